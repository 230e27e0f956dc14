"""The live Binance source end to end against the stand-in exchange on 127.0.0.1 and the real broker.

What is checked is the TOPIC itself (consumed with confluent-kafka): bronze's key would hide a
duplicate the producer published twice.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from tests.conftest import REPO, free_port
from tests.expected import recording_trades
from testkit.wait import until

pytestmark = [pytest.mark.kafka]

REC = "ticks/ws_recordings/{}"
HFT = ["btcusdt_20240808.gz", "btcusdt_20240809.gz", "ethusdt_20240808.gz", "ethusdt_20240809.gz"]
CRYPTOFEED = "cryptofeed_BINANCE-ee25be.0.gz"
KLINES = "klines_1m/BTCUSDT-1m-2024-08-08.csv.gz"


class Standin:
    """`python -m testkit.standin_exchange` in a process of its own, on a free port."""

    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "testkit.standin_exchange", "--port", str(self.port),
                                      *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.stats()
                break
            except OSError:
                assert self.proc.poll() is None, "the stand-in exited"
                assert time.monotonic() < deadline, "the stand-in did not answer within 60 s"
                time.sleep(0.1)

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_standin/stats", timeout=5) as r:
            return json.loads(r.read())

    def control(self, action: str, **kw) -> dict:
        q = "&".join([f"action={action}"] + [f"{k}={v}" for k, v in kw.items()])
        req = urllib.request.Request(f"{self.url}/_standin/control?{q}", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def settings(self, s):
        return dataclasses.replace(s, binance_ws_url=f"ws://127.0.0.1:{self.port}", binance_rest_url=self.url,
                                   producer_metrics_port=0)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def standin_factory():
    made = []

    def make(*args):
        st = Standin(*map(str, args))
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()


def topic_records(s) -> list[dict]:
    """Every record of the test's topic: value, key, source header, partition, offset."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "test-live-reader",
                  "enable.auto.commit": False, "log_level": 3})
    out = []
    try:
        parts = c.list_topics(s.topic, timeout=10).topics[s.topic].partitions
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(s.topic, p), timeout=10)
            if hi <= lo:
                continue
            c.assign([TopicPartition(s.topic, p, lo)])
            pos = lo
            deadline = time.monotonic() + 60
            while pos < hi and time.monotonic() < deadline:
                for m in c.consume(2000, timeout=1):
                    if m.error() is None:
                        out.append({"value": m.value(), "key": m.key(), "partition": p, "offset": m.offset(),
                                    "source": dict(m.headers() or []).get("tickcast-source", b"").decode()})
                        pos = m.offset() + 1
            assert pos >= hi, f"partition {p}: read to {pos} of {hi}"
    finally:
        c.close()
    return out


def split(records):
    """(trades per (symbol, kind) in topic order, other records)."""
    trades, other = defaultdict(list), []
    for r in records:
        try:
            ev = json.loads(r["value"])
        except ValueError:
            ev = None
        kind = ev.get("e") if isinstance(ev, dict) else None
        ident = ev.get({"trade": "t", "aggTrade": "a"}.get(kind, "?")) if kind else None
        if isinstance(ident, int):
            trades[(ev["s"], kind)].append((ident, ev, r))
        else:
            other.append(r)
    return trades, other


def assert_exactly_once_and_contiguous(trades, expected_ids: dict):
    assert set(trades) == set(expected_ids), (set(trades), set(expected_ids))
    for key, rows in trades.items():
        ids = [i for i, _, _ in rows]
        assert len(ids) == len(set(ids)), f"{key}: {len(ids) - len(set(ids))} ids published twice"
        assert ids == sorted(ids), f"{key}: published out of order"
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{key}: ids not contiguous"
        assert set(ids) == expected_ids[key], f"{key}: missing {sorted(expected_ids[key] - set(ids))[:10]}"
        for _, _, r in rows:
            assert r["key"] == key[0].encode() and r["source"] in ("live", "gapfill")


class LiveRun:
    """A LiveProducer in a thread of this process (its own registry, Kafka producer and event loop)."""

    def __init__(self, s, symbols, kind="trade", **opts):
        from producers.live import LiveOptions, LiveProducer

        opts.setdefault("backoff_base_s", 0.2)
        opts.setdefault("backoff_cap_s", 2.0)
        self.p = LiveProducer(s, LiveOptions(symbols=symbols, kind=kind, lifetime_s=s.binance_ws_lifetime_seconds,
                                             **opts))
        self.stop = threading.Event()
        self.counts = None
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.p.connected.wait(30), "the producer did not connect within 30 s"

    def _run(self):
        try:
            self.counts = self.p.run(self.stop, serve_metrics=True)
        except BaseException as e:  # surfaced by finish()
            self.error = e

    def caught_up(self, last_ids: dict) -> bool:
        for k, v in last_ids.items():
            sym, kind = k.split("@")
            st = self.p.seq.keys.get((sym, kind))
            if st is None or st.last != v:
                return False
        return True

    def finish(self):
        self.stop.set()
        self.t.join(60)
        assert not self.t.is_alive(), "the producer did not stop"
        if self.error:
            raise self.error
        return self.counts


def wait_done(ex: Standin, run: LiveRun | None, timeout=120, steps=()) -> dict:
    """Wait until the stand-in released everything and the producer published up to its last ids."""
    steps = list(steps)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = ex.stats()
        while steps and st["position"] >= steps[0][0]:
            _, action, kw = steps[0]
            if action in ("drop", "shutdown") and ex.control(action, **kw)["n"] == 0:
                break      # no connection to act on (the producer is between connections): next poll
            if action not in ("drop", "shutdown"):
                ex.control(action, **kw)
            steps.pop(0)
        if st["done"] and not steps and (run is None or run.caught_up(st["last_ids"])):
            return st
        time.sleep(0.1)
    raise AssertionError(f"not done within {timeout} s: {ex.stats()}")


def expected_ids(files) -> dict:
    out = defaultdict(set)
    for f in files:
        for t in recording_trades(f):
            out[(t["symbol"], "trade")].add(t["id"])
    return out


@pytest.mark.spark
def test_every_recorded_trade_reaches_the_topic_exactly_once_through_drops_shutdown_refusals_429_and_garbage(
        spark, lane, shared_data, standin_factory):
    files = [shared_data / REC.format(f) for f in HFT]
    ex = standin_factory("--paused", "--rate", 4000, "--garbage-every", 2500, "--refuse-seconds", 1.0,
                         "--shutdown-grace", 2, "--ping-interval", 1, "--pong-timeout", 3,
                         "--recordings", *files)
    s = dataclasses.replace(ex.settings(lane), producer_metrics_port=free_port())
    run = LiveRun(s, ["BTCUSDT", "ETHUSDT"])
    ex.control("resume")
    final = wait_done(ex, run, steps=[
        (5000, "drop", {}),                       # dropped mid-stream, reconnects refused for 1 s
        (11000, "force429", {"n": 2}),            # the next REST calls (the gap-fill) get 429 + Retry-After
        (11500, "drop", {}),
        (19000, "shutdown", {}),                  # serverShutdown: rotate before the close
        (27000, "drop", {}),
    ])
    with urllib.request.urlopen(f"http://127.0.0.1:{s.producer_metrics_port}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    counts = run.finish()
    assert counts.failed == 0

    records = topic_records(s)
    trades, other = split(records)
    want = expected_ids(files)
    assert_exactly_once_and_contiguous(trades, want)
    # Values equal the recording (gap-filled ones come from REST rows: E = T there, as the contract says).
    rec = {(t["symbol"], t["id"]): t for f in files for t in recording_trades(f)}
    sources = Counter()
    for key, rows in trades.items():
        for ident, ev, r in rows:
            t = rec[(key[0], ident)]
            assert (Decimal(ev["p"]), Decimal(ev["q"]), ev["T"], ev["m"]) == (
                t["price"], t["quantity"], t["trade_ms"], t["is_buyer_maker"])
            assert ev["E"] == (t["event_ms"] if r["source"] == "live" else ev["T"])
            sources[r["source"]] += 1
    # Both paths carried trades; their shares depend on timing (a calm machine gap-fills more).
    assert sources["gapfill"] > 0 and sources["live"] > 0
    assert sources["gapfill"] == sum(run.p.gapfilled.values())

    # The exchange's view: every rule kept, and every misbehaviour really happened.
    c = final["counters"]
    assert final["violations"] == {}, final["violations"]
    assert c["dropped"] >= 3 and c.get("refused", 0) >= 1 and c["forced_429"] == 2
    assert c["shutdown_sent"] >= 1 and c.get("pongs", 0) >= 1 and c.get("lifetime_closes", 0) == 0
    assert run.p.stats["reconnects"] >= 3 and run.p.stats["rotations"] >= 1

    # Metrics: gap-filled trades per symbol, reconnects, 429 honoured.
    gauge = {}
    for line in metrics.splitlines():
        if line.startswith(("tickcast_live_gapfilled_trades_total{", "tickcast_live_reconnects_total{",
                            "tickcast_live_rest_retry_after_total{")):
            name, value = line.rsplit(" ", 1)
            gauge[name] = float(value)
    filled = {k: v for k, v in gauge.items() if k.startswith("tickcast_live_gapfilled")}
    assert sum(filled.values()) == sources["gapfill"]
    assert sum(v for k, v in gauge.items() if k.startswith("tickcast_live_reconnects")) >= 3
    assert gauge.get('tickcast_live_rest_retry_after_total{status="429"}', 0) >= 1
    assert 'tickcast_live_messages_total{kind="trade",source="live",symbol="BTCUSDT"}' in metrics
    for sym in ("BTCUSDT", "ETHUSDT"):
        last = [x for x in metrics.splitlines()
                if x.startswith(f'tickcast_live_last_trade_time_seconds{{kind="trade",symbol="{sym}"}}')]
        assert last and float(last[0].split()[-1]) > 1.7e9      # the recording's trade times (2024)
        assert f'tickcast_live_lag_seconds{{kind="trade",symbol="{sym}"}}' in metrics

    # Garbage frames went to the topic bare, each once, and ingest quarantines every one of them.
    garbage = [r["value"] for r in other]
    assert garbage and all(b"garbage #" in g for g in garbage)
    numbers = [g.split(b"garbage #")[1][:8].split(b'"')[0].split(b":")[0] for g in garbage]
    assert len(numbers) == len(set(numbers)) <= c["garbage_sent"]
    assert not any(g.startswith(b'{"stream"') for g in garbage)

    from jobs.runner import run as run_jobs
    from tickcast import tables

    run_jobs(["ingest"], s, available_now=True, spark=spark)
    q = spark.read.format("delta").load(tables.QUARANTINE.path(s)).collect()
    assert sorted(bytes(r["raw_value"]) for r in q) == sorted(garbage)
    assert spark.read.format("delta").load(tables.TICKS.path(s)).count() == sum(map(len, want.values()))


def test_rotation_before_the_lifetime_loses_nothing_and_needs_no_gapfill(lane, shared_data, standin_factory):
    f = shared_data / REC.format(CRYPTOFEED)
    # The stand-in hard-closes at 3 s; the producer rotates at 1.2 s. 3 symbols, 2 per connection.
    ex = standin_factory("--paused", "--rate", 250, "--lifetime", 3, "--recordings", f)
    s = dataclasses.replace(ex.settings(lane), binance_ws_lifetime_seconds=1.2)
    run = LiveRun(s, ["BTCUSDT", "ETHUSDT", "DOTUSDT"], kind="aggTrade", streams_per_connection=2)
    assert len(run.p.groups) == 2
    ex.control("resume")
    final = wait_done(ex, run, timeout=60)
    run.finish()
    trades, other = split(topic_records(s))
    want = {(k.split("@")[0], "aggTrade"): set(range(final["first_ids"][k], v + 1))
            for k, v in final["last_ids"].items()}
    assert sum(map(len, want.values())) == 1910
    assert_exactly_once_and_contiguous(trades, want)
    assert not other
    assert run.p.stats["rotations"] >= 6 and run.p.stats["reconnects"] == 0
    assert final["counters"].get("lifetime_closes", 0) == 0, "a connection reached the exchange's hard close"
    assert sum(run.p.gapfilled.values()) == 0, "overlap, then switch: nothing to fetch over REST"
    assert run.p.seq.duplicates > 0, "the connections really overlapped"
    assert final["violations"] == {}


def test_restart_recovers_the_last_id_from_the_topic_and_gapfills(lane, shared_data, standin_factory):
    files = [shared_data / REC.format(f) for f in ("btcusdt_20240808.gz", "ethusdt_20240808.gz")]
    ex = standin_factory("--paused", "--rate", 1500, "--recordings", *files)
    s = ex.settings(lane)
    env = s.child_env()
    cmd = [sys.executable, "-m", "tickcast.cli", "produce", "--source", "live", "--symbols", "BTCUSDT,ETHUSDT"]

    def start():
        return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def wait_for(cond, timeout=60):
        until(cond, timeout, "the stand-in's state", interval=0.1)

    first = start()
    try:
        wait_for(lambda: ex.stats()["open_connections"] >= 1)
        ex.control("resume")
        wait_for(lambda: ex.stats()["position"] >= 5000)
    finally:
        os.killpg(first.pid, signal.SIGKILL)       # a crash: no flush, no goodbye
        first.wait(30)
    away = ex.stats()["position"]
    wait_for(lambda: ex.stats()["position"] >= away + 2000)   # the market goes on while the producer is away
    in_topic = {k: max(i for i, _, _ in v) for k, v in split(topic_records(s))[0].items()}
    assert in_topic, "the first run published nothing"
    second = start()
    try:
        wait_for(lambda: ex.stats()["open_connections"] >= 1)
        final = ex.stats()
        while not final["done"]:
            time.sleep(0.2)
            final = ex.stats()

        def caught_up():
            got = {k: max(i for i, _, _ in v) for k, v in split(topic_records(s))[0].items()}
            return all(got.get((k.split("@")[0], "trade")) == v for k, v in final["last_ids"].items())
        wait_for(caught_up, 60)
    finally:
        second.send_signal(signal.SIGINT)
        out, err = second.communicate(timeout=60)
    err = err.decode()
    for (sym, kind), last in in_topic.items():
        assert f"{sym} {kind} {last}" in err, err     # the last ids were read back from the topic
    records = topic_records(s)
    trades, _ = split(records)
    assert_exactly_once_and_contiguous(trades, expected_ids(files))
    gap = [r for rows in trades.values() for _, _, r in rows if r["source"] == "gapfill"]
    assert gap, "the trades released while the producer was down came over REST"
    assert b"gap-filled" in out and ex.stats()["violations"] == {}


def test_the_standin_counts_a_misbehaving_client(standin_factory):
    """The limit checks above can fail: a client breaking the rules is caught and counted."""
    import asyncio

    import aiohttp

    ex = standin_factory("--paused", "--ping-interval", 0.3, "--pong-timeout", 0.6, "--ban-seconds", 1)

    async def misbehave():
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://127.0.0.1:{ex.port}/stream?streams=btcusdt@trade", autoping=False)
            for i in range(10):                   # 10 SUBSCRIBE messages at once: Binance allows 5/s
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": i}))
            while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass
            close_code = ws.close_code
            ws2 = await session.ws_connect(f"ws://127.0.0.1:{ex.port}/ws/btcusdt@trade", autoping=False)
            while (await ws2.receive(timeout=5)).type not in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR,
                                                               aiohttp.WSMsgType.CLOSE):
                pass                              # pings never answered
            return close_code

    assert asyncio.run(misbehave()) == 1008
    ex.control("force429")
    codes = []
    for i in range(2):                            # asks again after 0.4 s, ignoring Retry-After: 1
        if i:
            time.sleep(0.4)                       # past the grace for requests already in flight
        try:
            urllib.request.urlopen(f"{ex.url}/api/v3/ping", timeout=5)
            codes.append(200)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
            assert e.headers["Retry-After"]
    assert codes == [429, 418]
    v = ex.stats()["violations"]
    assert v == {"too_many_messages": 1, "no_pong": 1, "ignored_retry_after": 1}


def test_rest_reachability_decides_auto(base_settings, standin_factory):
    from tickcast.sources.rest import rest_reachable

    ex = standin_factory("--paused")
    assert rest_reachable(ex.settings(base_settings), timeout=3)
    dead = dataclasses.replace(base_settings, binance_rest_url=f"http://127.0.0.1:{free_port()}")
    t0 = time.monotonic()
    assert not rest_reachable(dead, timeout=3) and time.monotonic() - t0 < 4


@pytest.mark.spark
def test_rest_klines_backfill_into_bars_insert_only(spark, lane, shared_data, standin_factory):
    from tickcast import tables
    from jobs.commands import rest_backfill

    # The stand-in's clock is the recording's (2024-08-08 23:54:15 UTC): 24 h back covers that day.
    ex = standin_factory("--paused", "--recordings", shared_data / REC.format(HFT[0]),
                         "--klines", shared_data / KLINES)
    s = ex.settings(lane)
    r, _ = rest_backfill(s, ["BTCUSDT"], 24.0, spark=spark)
    import gzip

    with gzip.open(shared_data / KLINES, "rt") as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    closed = [x for x in rows if int(x[0]) < 1723161240000]      # minutes closed by 23:54:00
    assert r["rows_read"] == len(closed) == 1434 and r["inserted"] == 1434
    bars = {b["window_start"].timestamp(): b for b in
            spark.read.format("delta").load(tables.BARS.path(s)).collect()}
    assert len(bars) == 1434
    for x in closed[::97]:
        b = bars[int(x[0]) / 1000]
        assert (b["open"], b["close"], b["volume"], b["trade_count"], b["source"]) == (
            Decimal(x[1]), Decimal(x[4]), Decimal(x[5]), int(x[8]), "klines")
    assert rest_backfill(s, ["BTCUSDT"], 24.0, spark=spark)[0]["inserted"] == 0


def test_hundreds_of_symbols_subscribe_within_the_message_rate_and_arrive_exactly_once(lane, standin_factory):
    """250 streams: 100 in the URL, the rest by SUBSCRIBE (spaced under 5 messages/s)."""
    ex = standin_factory("--paused", "--synthetic-symbols", 250, "--rate", 2000)
    s = ex.settings(lane)
    symbols = [f"SYN{i:03d}USDT" for i in range(250)]
    run = LiveRun(s, symbols)
    deadline = time.monotonic() + 30
    while len(ex.stats()["open_streams"]) < 250:
        assert time.monotonic() < deadline, "not every stream was subscribed"
        time.sleep(0.1)
    ex.control("resume")
    until(lambda: ex.stats()["position"] >= 6000, 60, "6,000 trades released", interval=0.1)
    ex.control("pause")
    st = ex.stats()
    deadline = time.monotonic() + 60
    while not run.caught_up(st["last_ids"]):
        assert time.monotonic() < deadline, "the producer did not catch up"
        time.sleep(0.1)
    run.finish()
    trades, other = split(topic_records(s))
    want = {(k.split("@")[0], "trade"): set(range(st["first_ids"][k], v + 1)) for k, v in st["last_ids"].items()}
    assert sum(map(len, want.values())) == st["position"] > 4000
    assert_exactly_once_and_contiguous(trades, want)
    assert not other and sum(run.p.gapfilled.values()) == 0
    assert st["counters"]["subscribe"] == 2 and st["violations"] == {}


def test_agg_trades_are_gap_filled_from_the_agg_trades_endpoint(lane, shared_data, standin_factory):
    f = shared_data / REC.format(CRYPTOFEED)
    ex = standin_factory("--paused", "--rate", 300, "--refuse-seconds", 0.5, "--recordings", f)
    s = ex.settings(lane)
    run = LiveRun(s, ["BTCUSDT", "ETHUSDT", "DOTUSDT"], kind="aggTrade")
    ex.control("resume")
    final = wait_done(ex, run, timeout=60, steps=[(500, "drop", {}), (1200, "drop", {})])
    run.finish()
    trades, other = split(topic_records(s))
    want = {(k.split("@")[0], "aggTrade"): set(range(final["first_ids"][k], v + 1))
            for k, v in final["last_ids"].items()}
    assert_exactly_once_and_contiguous(trades, want)
    gap = [ev for rows in trades.values() for _, ev, r in rows if r["source"] == "gapfill"]
    assert gap and final["counters"].get("rest_aggTrades_rows", 0) >= len(gap)
    assert all(ev["e"] == "aggTrade" and ev["E"] == ev["T"] for ev in gap)
    # Every published aggTrade (live or REST) carries the recorded values (read here with plain gzip/json).
    import gzip

    recorded = {}
    with gzip.open(f, "rt") as fh:
        for line in fh:
            body = line[line.find("{"):] if ": {" in line and not line.startswith(("http", "wss")) else ""
            d = json.loads(body).get("data", {}) if body else {}
            if d.get("e") == "aggTrade":
                recorded[(d["s"], d["a"])] = d
    for rows in trades.values():
        for ident, ev, _ in rows:
            d = recorded[(ev["s"], ident)]
            assert [ev[k] for k in "pqflTm"] == [d[k] for k in "pqflTm"]
    assert final["violations"] == {} and not other


def test_a_broker_outage_loses_no_trade_and_duplicates_none(own_broker, shared_data, standin_factory):
    """The broker (one of this test's own: the shared one never stops) stops in the middle of a live
    stream while the exchange releases 3,000 trades (12 s at 250/s, beyond librdkafka's 10 s
    longest reconnect back-off), then starts again: every trade id of the recording is in the
    topic, contiguous, in order and once. Deliveries never time out
    (LIVE_PRODUCER_CONFIG): librdkafka keeps them queued, in order, and the idempotent producer
    retries without duplicates; nothing is dropped, so nothing needs re-sending out of order."""
    from producers.live import LIVE_PRODUCER_CONFIG
    from tickcast import kafka_broker

    assert LIVE_PRODUCER_CONFIG["message.timeout.ms"] == 0
    f = shared_data / REC.format("btcusdt_20240808.gz")
    ex = standin_factory("--paused", "--rate", 250, "--recordings", f)
    s = ex.settings(own_broker)
    run = LiveRun(s, ["BTCUSDT"])
    ex.control("resume")
    until(lambda: ex.stats()["position"] >= 1500, 60, "1,500 trades released", interval=0.1)
    t0 = time.monotonic()
    kafka_broker.stop(own_broker)
    try:
        at_stop = ex.stats()["position"]
        # The exchange goes on sending during the outage.
        until(lambda: ex.stats()["position"] >= at_stop + 3000, 60, "3,000 trades during the outage", interval=0.1)
    finally:
        kafka_broker.start(own_broker)
    outage = time.monotonic() - t0
    final = wait_done(ex, run, timeout=180)
    counts = run.finish()
    assert counts.failed == 0
    trades, _ = split(topic_records(s))
    assert_exactly_once_and_contiguous(trades, expected_ids([f]))
    print(f"broker outage {outage:.1f} s: {sum(map(len, trades.values()))} trades in the topic, "
          f"each once, contiguous; {final['position']} released by the exchange")
