"""Parsing of Binance files and recordings into topic records (pure, no Kafka)."""
import gzip
import json
import zipfile

import pytest

from producers.replay import read_file
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
