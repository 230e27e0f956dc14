"""Kafka -> bronze.ticks / bronze.quarantine against the real broker, Spark and Delta."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.expected import agg_trades, recording_trades
from tickcast import tables

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

WS = "ticks/ws_recordings/btcusdt_2024080{}.gz"
AGG = "ticks/aggTrades/BTCUSDT-aggTrades-2026-01-01-first5000.csv.gz"


def publish_files(s, paths, source="replay"):
    from producers.publisher import Publisher
    from producers.sources import replay_records

    pub = Publisher(s, source)
    pub.publish(replay_records(paths))
    return pub.close()


def ingest_now(spark, s):
    from jobs.runner import run

    return run(["ingest"], s, available_now=True, spark=spark)


def bronze(spark, s):
    rows = spark.read.format("delta").load(tables.TICKS.path(s)).collect()
    return [r.asDict() for r in rows]


def to_ms(ts) -> int:
    return round(ts.timestamp() * 1000)


def test_every_trade_lands_exactly_once_with_source_values(spark, lane, shared_data):
    files = [shared_data / WS.format(8), shared_data / WS.format(9), shared_data / AGG]
    counts = publish_files(lane, files)
    expected = recording_trades(files[0]) + recording_trades(files[1]) + agg_trades(files[2])
    assert counts.sent == len(expected) == 9757 + 10147 + 5000
    assert counts.failed == 0
    # The recordings' bookTicker/depth events are skipped by the producer and counted, never sent.
    assert counts.skipped["bookTicker"] > 0 and counts.skipped["depthUpdate"] > 0

    ingest_now(spark, lane)
    got = {(r["symbol"], r["event_kind"], r["id"]): r for r in bronze(spark, lane)}
    assert len(got) == len(expected)
    for e in expected:
        r = got[(e["symbol"], e["event_kind"], e["id"])]
        assert (r["first_trade_id"], r["last_trade_id"]) == (e["first_trade_id"], e["last_trade_id"])
        assert r["price"] == e["price"] and r["quantity"] == e["quantity"], (r, e)
        assert r["quote_quantity"] == e["price"] * e["quantity"]
        assert to_ms(r["trade_time"]) == e["trade_ms"] and to_ms(r["event_time"]) == e["event_ms"]
        assert r["is_buyer_maker"] == e["is_buyer_maker"]
        assert r["source"] == "replay" and r["date"] == r["trade_time"].date()
    assert spark.read.format("delta").load(tables.QUARANTINE.path(lane)).count() == 0

    # Replaying the same files again (new offsets, same trades) adds no row.
    assert publish_files(lane, files).sent == len(expected)
    ingest_now(spark, lane)
    assert spark.read.format("delta").load(tables.TICKS.path(lane)).count() == len(expected)
    # aggTrades: ids are contiguous and each covers last - first + 1 trades, as in the file.
    agg = sorted((r for r in got.values() if r["event_kind"] == "aggTrade"), key=lambda r: r["id"])
    assert [r["id"] for r in agg] == list(range(agg[0]["id"], agg[0]["id"] + 5000))
    assert all(b["first_trade_id"] == a["last_trade_id"] + 1 for a, b in zip(agg, agg[1:]))


BAD = [
    (b"this is not json", "malformed JSON"),
    (b'{"e":"trade","s":"BTCUSDT",', "malformed JSON"),
    (b"[1,2,3]", "not an object"),
    (b'"just a string"', "not an object"),
    (b"42", "not an object"),
    (b"", "empty value"),
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","p":"1.0","q":"1.0","T":1723161255342,"m":true}',
     "missing field: t"),
    (b'{"E":1723161255343,"s":"BTCUSDT","t":1,"p":"1.0","q":"1.0","T":1723161255342,"m":true}', "missing field: e"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":"abc","p":"1.0","q":"1.0","T":1723161255342,"m":true}',
     "field t is not an integer"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":5,"p":"cheap","q":"1.0","T":1723161255342,"m":true}',
     "field p is not a decimal"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":6,"p":"1.0","q":"1.0","T":1723161255342,"m":"maybe"}',
     "field m is not a boolean"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"0.00000000","q":"1.0","T":1723161255342,"m":true}',
     "non-positive price"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":8,"p":"-5.0","q":"1.0","T":1723161255342,"m":true}',
     "field p is not a decimal"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":9,"p":"5.0","q":"0","T":1723161255342,"m":true}',
     "non-positive quantity"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":10,"p":"5.0","q":"1","T":4102444800000,"m":true}', "in the future"),
    (b'{"e":"trade","E":1,"s":"","t":11,"p":"5.0","q":"1","T":1723161255342,"m":true}', "empty symbol"),
    (b'{"e":"pizza","E":1,"s":"BTCUSDT","t":12}', "unknown event type: pizza"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":13,"p":"5.0","q":"1","T":1723161255342,"m":true,"x":"'
     + b"A" * 5000 + b'"}', "oversized"),
    (b"\xff\xfe\x00garbage", "malformed JSON"),
    # Past timestamp range: once a task failure that stopped the stream, now a reason.
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":14,"p":"5.0","q":"1","T":9223372036854775807,"m":true}',
     "in the future"),
    (b'{"e":"trade","E":-9223372036854775808,"s":"BTCUSDT","t":15,"p":"5.0","q":"1","T":1723161255342,"m":true}',
     "event time before 2010"),
    # Poison values: 19 digits above the int64 range in every id and time field (try_cast gives
    # NULL, which once passed every rule and left NULL times in bronze), exponent forms, times
    # outside the sane range in each time field.
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":16,"p":"5.0","q":"1","T":9999999999999999999,"m":true}',
     "field T out of integer range: 9999999999999999999"),
    (b'{"e":"trade","E":9999999999999999999,"s":"BTCUSDT","t":17,"p":"5.0","q":"1","T":1723161255342,"m":true}',
     "field E out of integer range"),
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":9999999999999999999,"p":"5.0","q":"1",'
     b'"T":1723161255342,"m":true}', "field t out of integer range"),
    (b'{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT","a":9999999999999999999,"p":"5.0","q":"1","f":1,"l":2,'
     b'"T":1723161255342,"m":true}', "field a out of integer range"),
    (b'{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT","a":18,"p":"5.0","q":"1","f":9999999999999999999,"l":2,'
     b'"T":1723161255342,"m":true}', "field f out of integer range"),
    (b'{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT","a":19,"p":"5.0","q":"1","f":1,"l":-9999999999999999999,'
     b'"T":1723161255342,"m":true}', "field l out of integer range"),
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":20,"p":"5.0","q":"1","T":1.723161255342E12,"m":true}',
     "field T is not an integer"),
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":1e5,"p":"5.0","q":"1","T":1723161255342,"m":true}',
     "field t is not an integer"),
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":21,"p":"5e3","q":"1","T":1723161255342,"m":true}',
     "field p is not a decimal"),
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":22,"p":"5.0","q":"1","T":1262303999999,"m":true}',
     "trade time before 2010"),
    (b'{"e":"trade","E":4102444800000,"s":"BTCUSDT","t":23,"p":"5.0","q":"1","T":1723161255342,"m":true}',
     "event time"),
    (b'{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT","a":24,"p":"5.0","q":"1","f":-3,"l":2,'
     b'"T":1723161255342,"m":true}', "negative first trade id"),
    (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":-25,"p":"5.0","q":"1","T":1723161255342,"m":true}',
     "negative trade id"),
]


def publish_with_bad(s, path) -> list:
    """The recording's trades with the BAD records spread among them; returns the trades' records."""
    from producers.publisher import Publisher
    from producers.sources import replay_records

    sendable = [r for r in replay_records([path]) if r.value is not None]
    pub = Publisher(s, "replay")
    step = len(sendable) // (len(BAD) + 1)
    for i, rec in enumerate(sendable):
        pub.send(rec.value, rec.key)
        if i % step == step - 1 and i // step < len(BAD):
            pub.send(BAD[i // step][0], b"BTCUSDT")
    counts = pub.close()
    assert counts.sent == len(sendable) + len(BAD) and counts.failed == 0
    return sendable


def test_bad_input_goes_to_quarantine_and_the_stream_goes_on(spark, lane, shared_data):
    sendable = publish_with_bad(lane, shared_data / WS.format(8))

    last = ingest_now(spark, lane)
    assert last["ingest"]["batchId"] >= 0
    assert spark.read.format("delta").load(tables.TICKS.path(lane)).count() == len(sendable) == 9757
    q = {bytes(r["raw_value"] or b""): r for r in
         (x.asDict() for x in spark.read.format("delta").load(tables.QUARANTINE.path(lane)).collect())}
    assert len(q) == len(BAD)
    for raw, why in BAD:
        row = q[raw]
        assert why in row["reason"], (raw[:60], row["reason"])
        assert row["kafka_partition"] is not None and row["kafka_offset"] is not None
        assert row["kafka_timestamp"] is not None and row["ingest_time"] is not None and row["source"] == "replay"
    # No NULL key or time in bronze, and Delta itself would refuse one (the table says NOT NULL).
    schema = spark.read.format("delta").load(tables.TICKS.path(lane)).schema
    assert all(not schema[c].nullable for c in ("symbol", "event_kind", "id", "trade_time", "event_time", "date"))

    # A deleted checkpoint: the topic is read again from the start under a new query id. Neither
    # sink may add a row (quarantine once by its Kafka coordinates, ticks once by key).
    import shutil

    shutil.rmtree(tables.checkpoint(lane, "ingest"))
    ingest_now(spark, lane)
    assert spark.read.format("delta").load(tables.TICKS.path(lane)).count() == 9757
    again = spark.read.format("delta").load(tables.QUARANTINE.path(lane))
    assert again.count() == len(BAD)
    assert again.select("kafka_partition", "kafka_offset").distinct().count() == len(BAD)


def _writers(table_path: str) -> list[str]:
    """Per commit of a Delta table after its creation: "delta-rs" or "spark", from its commitInfo."""
    out = []
    for f in sorted(Path(table_path, "_delta_log").glob("*.json"))[1:]:
        info = next(json.loads(x)["commitInfo"] for x in f.read_text().splitlines() if '"commitInfo"' in x)
        out.append("spark" if "Apache-Spark" in info.get("engineInfo", "") else "delta-rs")
    return out


def test_live_sized_batches_take_the_arrow_path_with_the_same_rows_and_reasons(spark, lane, shared_data):
    """Batches of 500 (a live rate's size): after the run's first batch, ticks and quarantine go
    through the driver's Arrow path and delta-rs; rows the typed pass cannot decide (malformed
    JSON...) and a replay's old ids send their batch down the distributed path. Same rows either way."""
    import dataclasses

    from producers.publisher import Publisher

    s = dataclasses.replace(lane, max_offsets_per_trigger=500)
    f8 = shared_data / WS.format(8)
    good = publish_with_bad(s, f8)

    ingest_now(spark, s)
    expected = recording_trades(f8)
    got = {r["id"]: r for r in bronze(spark, s)}
    assert len(got) == len(expected) == 9757
    for e in expected:
        r = got[e["id"]]
        assert (r["price"], r["quantity"], r["quote_quantity"]) == (e["price"], e["quantity"], e["price"] * e["quantity"])
        assert (to_ms(r["trade_time"]), to_ms(r["event_time"])) == (e["trade_ms"], e["event_ms"])
        assert (r["is_buyer_maker"], r["source"], r["date"]) == (e["is_buyer_maker"], "replay", r["trade_time"].date())
    q = {bytes(r["raw_value"] or b""): r["reason"] for r in
         (x.asDict() for x in spark.read.format("delta").load(tables.QUARANTINE.path(s)).collect())}
    assert len(q) == len(BAD)
    for raw, why in BAD:
        assert why in q[raw], (raw[:60], q[raw])
    ticks_writers = _writers(tables.TICKS.path(s))
    # ~21 batches: the first (and those holding an undecided row) by Spark, the rest by delta-rs.
    assert ticks_writers.count("delta-rs") >= 5 and ticks_writers[0] == "spark", ticks_writers
    assert "delta-rs" in _writers(tables.QUARANTINE.path(s))

    # The same trades again, in live-sized batches: old ids, so every batch merges; no row added.
    pub = Publisher(s, "replay")
    pub.publish(iter(good))
    assert pub.close().failed == 0
    ingest_now(spark, s)
    rows = spark.read.format("delta").load(tables.TICKS.path(s))
    assert rows.count() == rows.select("id").distinct().count() == 9757
    assert _writers(tables.TICKS.path(s))[len(ticks_writers):].count("delta-rs") == 0


def _committed_batches(checkpoint: Path) -> list[int]:
    d = checkpoint / "commits"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def test_kill_minus_9_then_restart_resumes_from_checkpoint_exactly_once(spark, lane, shared_data):
    import dataclasses

    files = [shared_data / WS.format(8), shared_data / WS.format(9)]
    assert publish_files(lane, files).sent == 19904
    s = dataclasses.replace(lane, max_offsets_per_trigger=500, trigger_seconds=0.5)
    env = s.child_env()
    proc = subprocess.Popen([sys.executable, str(REPO / "jobs" / "main.py"), "--job", "ingest"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = Path(tables.checkpoint(s, "ingest"))
    try:
        deadline = time.monotonic() + 240
        while len(_committed_batches(ckpt)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "ingest driver died on its own"
            time.sleep(0.2)
        assert len(_committed_batches(ckpt)) >= 2, "no committed batch within 240 s"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the whole driver: Python and its JVM
        proc.wait(30)
    committed = _committed_batches(ckpt)
    before = spark.read.format("delta").load(tables.TICKS.path(s)).count()
    assert 0 < before < 19904, "the kill must land mid-replay"

    last = ingest_now(spark, dataclasses.replace(s, max_offsets_per_trigger=0))
    rows = spark.read.format("delta").load(tables.TICKS.path(s))
    assert rows.count() == 19904
    assert rows.select("symbol", "event_kind", "id").distinct().count() == 19904
    expected_ids = {t["id"] for f in files for t in recording_trades(f)}
    assert {r["id"] for r in rows.select("id").collect()} == expected_ids

    # It resumed from the checkpointed offsets: the restart's first batch follows the last commit,
    # starts at a non-zero offset, and the restart read fewer records than the topic holds.
    prog = spark.read.format("delta").load(tables.STREAM_PROGRESS.path(s)).where(
        f"run_id = '{last['ingest']['runId']}'").orderBy("batch_id").collect()
    assert prog, "the restarted run recorded no progress"
    assert prog[0]["batch_id"] == committed[-1] + 1
    start = json.loads(prog[0]["start_offset"])
    # offsets/N in the checkpoint holds batch N's end offsets: the restart began exactly there.
    checkpointed = json.loads((ckpt / "offsets" / str(committed[-1])).read_text().splitlines()[-1])
    assert start == checkpointed
    assert 0 < sum(int(v) for parts in start.values() for v in parts.values()) < 19904


def test_offsets_deleted_before_ingest_read_them_are_counted_per_partition(spark, lane, shared_data):
    """Retention (here: Kafka's DeleteRecords, what retention does to a segment) removes offsets
    ingest had not read: the stream goes on (failOnDataLoss=false) and the loss is kept in
    ops.lost_offsets per partition, exactly, for `up`'s status line."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from producers.publisher import Publisher
    from tickcast import data_loss

    recs = [r for r in __import__("producers.sources", fromlist=["x"]).replay_records([shared_data / WS.format(8)])
            if r.value is not None]

    def send(part):
        pub = Publisher(lane, "replay")
        for r in part:
            pub._producer.produce(lane.topic, value=r.value, key=r.key, partition=0, headers=pub.headers)
        assert pub.close().failed == 0

    send(recs[:1000])
    ingest_now(spark, lane)
    assert data_loss.lost_offsets(lane) == {}
    send(recs[1000:3000])
    admin = AdminClient({"bootstrap.servers": lane.kafka_bootstrap})
    fut = admin.delete_records([TopicPartition(lane.topic, 0, 2500)])
    list(fut.values())[0].result(timeout=30)        # offsets 1000..2499 gone before ingest read them
    send(recs[3000:3500])
    ingest_now(spark, lane)
    assert data_loss.lost_offsets(lane) == {(lane.topic, 0): 1500}
    assert data_loss.describe(data_loss.lost_offsets(lane)) == f"LOST 1500 offsets ({lane.topic}/0: 1500)"
    ids = sorted(r["id"] for r in bronze(spark, lane))
    sent = [json.loads(r.value)["t"] for r in recs[:1000] + recs[2500:3500]]
    assert ids == sorted(sent)
