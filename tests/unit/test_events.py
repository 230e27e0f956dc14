"""Parsing of Binance files and recordings into topic records (pure, no Kafka)."""
import gzip
import json
import zipfile

import pytest

from tickcast.sources.public_data import read_file
from tickcast import events

TRADE = {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": 3735683259, "p": "61837.63000000",
         "q": "0.02000000", "T": 1723161255342, "m": True, "M": True}


def test_combined_wrapper_with_local_timestamp_is_unwrapped_to_the_bare_event():
    line = b'1723161254087896568 {"stream":"btcusdt@trade","data":' + json.dumps(TRADE).encode() + b"}"
    rec = events.from_recording_line(line)
    assert json.loads(rec.value) == TRADE and rec.key == b"BTCUSDT" and rec.trade_time_ms == TRADE["T"]
    assert b" " not in rec.value  # compact JSON


@pytest.mark.parametrize("line,kind", [
    (b'1 {"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}', "bookTicker"),
    (b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}}', "depthUpdate"),
    (b'{"lastUpdateId":5,"bids":[],"asks":[]}', "depthSnapshot"),
    (b'1617566591.1: {"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{}}}', "kline"),
    (b'https://www.binance.com/api/v1/depth?symbol=X -> 1617566592.1: {"lastUpdateId":1}', "restSnapshot"),
    (b'wss://stream.binance.com:9443/stream?streams=a <-> 1617566590.3', "recorderLog"),
])
def test_known_non_trade_events_are_skipped(line, kind):
    rec = events.from_recording_line(line)
    assert rec.value is None and rec.skipped == kind


@pytest.mark.parametrize("line", [b"garbage here", b'{"e":"trade",', b"[1,2]", b'{"e":"mystery","s":"X"}',
                                  b'{"foo":1}'])
def test_everything_else_is_forwarded_as_is(line):
    rec = events.from_recording_line(line)
    assert rec.value is not None and rec.skipped is None
    assert json.loads(rec.value) == json.loads(line) if line.startswith((b"[", b'{"f', b'{"e":"m')) else rec.value == line


def test_agg_trades_rows_micro_and_milli_seconds():
    us = events.from_csv_line(b"3800397495,87648.21000000,0.08185000,5723703861,5723703862,1767225600039409,True,True",
                              "BTCUSDT")
    ms = events.from_csv_line(b"3800397495,87648.21000000,0.08185000,5723703861,5723703862,1767225600039,True,True",
                              "BTCUSDT")
    assert us.value == ms.value
    ev = json.loads(us.value)
    assert ev == {"e": "aggTrade", "E": 1767225600039, "s": "BTCUSDT", "a": 3800397495, "p": "87648.21000000",
                  "q": "0.08185000", "f": 5723703861, "l": 5723703862, "T": 1767225600039, "m": True, "M": True}


def test_trades_rows_and_headers():
    assert events.from_csv_line(b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match", "X") is None
    ev = json.loads(events.from_csv_line(b"17,100.5,0.1,10.05,1723161255342,false,true", "ETHUSDT").value)
    assert ev == {"e": "trade", "E": 1723161255342, "s": "ETHUSDT", "t": 17, "p": "100.5", "q": "0.1",
                  "T": 1723161255342, "m": False, "M": True}
    bad = events.from_csv_line(b"17,100.5,0.1,10.05,notatime,false,true", "ETHUSDT")
    assert bad.value == b"17,100.5,0.1,10.05,notatime,false,true"   # forwarded for quarantine


@pytest.mark.parametrize("wrap", ["plain", "gz", "zip"])
def test_files_are_opened_by_content_not_name(tmp_path, wrap):
    body = (b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,best\n"
            b"1,10.0,1.0,1,2,1723161255342,true,true\n2,10.5,2.0,3,3,1723161255999,false,true\n")
    path = tmp_path / "ETHUSDT-aggTrades-2024-08-08.dat.gz"
    if wrap == "gz":
        path.write_bytes(gzip.compress(body))
    elif wrap == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("inner.csv", body)
    else:
        path.write_bytes(body)
    recs = list(read_file(path))
    assert [json.loads(r.value)["a"] for r in recs] == [1, 2] and recs[0].key == b"ETHUSDT"


def test_recording_file_with_and_without_local_timestamps(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_bytes(b"\n".join([
        b"123 " + json.dumps({"stream": "btcusdt@trade", "data": TRADE}).encode(),
        json.dumps(TRADE).encode(),
        b"",
        b"not json at all",
    ]))
    recs = list(read_file(path))
    assert [r.value for r in recs[:2]] == [events.compact(TRADE)] * 2 and recs[2].value == b"not json at all"


# --- poison lines never stop a replay, and a bad time never paces it (issue 24) ---

POISON_LINES = [
    b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":9999999999999999999,"m":true}',
    b'{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":-9999999999999999999,"m":true}',
    b'{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":1.7e12,"m":true}',
    b'{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":4102444800001,"m":true}',
    b'{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":1262303999999,"m":true}',
    b'{"e":["trade"],"s":"BTCUSDT","T":1723161255342}',
    b'{"e":{"x":1},"T":1723161255342}',
    b"[" * 200_000 + b"]" * 200_000,
    b'{"e":"trade","T":1e999}',
    b"\xff\xfe garbage",
    b'{"stream":"btcusdt@trade","data":{"e":"trade","T":99999999999999999999999}}',
]


def test_poison_recording_lines_are_forwarded_without_a_pacing_time():
    from tickcast import events

    for line in POISON_LINES:
        rec = events.from_recording_line(line)
        assert rec is not None and rec.value is not None, line[:60]
        # Only a sane time may pace (the two events with a bad type keep their sane T).
        assert rec.trade_time_ms in (None, 1723161255342), line[:60]


def test_a_bad_trade_time_never_drives_the_pacing():
    from producers.publisher import Pacer

    now = [0.0]
    p = Pacer(speed=10, clock=lambda: now[0])
    t0 = 1_723_161_255_000
    assert p.delay(t0) == 0.0
    assert p.delay(t0 + 1000) == 0.1             # one second of trade time at 10x
    assert p.delay(4_000_000_000_000) == 0.0     # a far-future poison record: sent at once
    assert p.delay(None) == 0.0
    assert p.delay(t0 + 2000) == 0.2             # the clock did not move to the poison time
    now[0] = 0.2
    assert p.delay(t0 + 3000) == pytest.approx(0.1)
    # A real gap in the source (two records beyond the jump): skipped, then paced from there.
    gap = t0 + 3_600_000
    assert p.delay(gap) == 0.0 and p.delay(gap + 10) == 0.0
    assert p.delay(gap + 1010) == pytest.approx(0.1)


def test_paced_replay_of_a_file_with_poison_lines_sends_every_line(tmp_path):
    """`publish(..., speed=10)` over a recording with poison lines: no exception, no long sleep,
    every line sent (the real Publisher code path, its Kafka producer replaced by a recorder)."""
    import time as _time

    from tickcast.sources import public_data as replay
    from producers.publisher import Counts, Publisher

    good = [b'{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,"p":"1.0","q":"1.0","T":%d,"m":true}' % (t, i, t)
            for i, t in enumerate(range(1_723_161_255_000, 1_723_161_255_000 + 2000, 100))]
    lines = good[:5] + POISON_LINES + good[5:]
    f = tmp_path / "rec.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")

    class Recorder:
        def __init__(self):
            self.sent = []

        def produce(self, topic, value, key, headers, on_delivery):
            self.sent.append(value)

        def poll(self, _t):
            return 0

    pub = Publisher.__new__(Publisher)
    pub.topic, pub.headers, pub.counts, pub._producer = "ticks", [], Counts(), Recorder()
    t0 = _time.monotonic()
    pub.publish(replay.read_file(f), speed=10)
    took = _time.monotonic() - t0
    assert len(pub._producer.sent) == len(lines)
    assert 0.15 <= took < 2.0, took               # 1.9 s of trade time at 10x; no poison wait
