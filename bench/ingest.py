"""`tickcast bench ingest`: producer and ingest throughput, the Spark ceiling, tick -> bronze latency.

Everything runs on a broker and a data directory of the bench's own (free ports, a temporary
folder under `<data_dir>/bench/`, deleted at the end), so a user's broker, topic and tables are
never touched. No pyspark import at module level: the Spark parts import it when they run.

What is measured (units in the printed table and in `<out>/ingest.json`):
  (a) producer: `ticks` simulated ticks published at max speed with `Publisher`, first send ->
      `close()` returned (every message acknowledged); next to it the rate of generating + encoding
      the same records without Kafka, and of `Publisher` alone over pre-encoded records, so the
      report can say which of the two limits the producer.
  (b) ingest: `jobs.ingest.start(available_now=True)` over the whole topic, rows in bronze.ticks /
      wall time from `start()` to termination (Spark start-up reported apart, excluded).
  (c) ceiling: the same session reading the same topic (same reader options, same partitions)
      into a `noop` sink, and, to split the gap, the production parse + validation into `noop`.
  (d) (b) / (c).
  (e) latency at a live ~50 ticks/s with the default trigger: Delta commit time of the version that
      added each row minus the row's kafka_timestamp.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Iterable, Iterator

from jobs import ingest
from tickcast.lake.write import ensure_table
from tickcast.engine.progress_json import last_progress, recent_progress
from producers.publisher import Publisher
from producers.sources import simulate_records
from tickcast import kafka_broker, schemas, tables
from tickcast.settings import Settings
from bench.measure import (CpuMeter, private_run, run_header, await_query, batch_summary, high_watermarks, jvm_pid, lane_settings, pct,
                           report, run_noop)

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
SIM_RATE = 50.0            # simulated trades/s of trade time; at max speed it only sets the timestamps
LIVE_RATE = 50.0           # (e): ticks/s paced in real time
# One unmeasured ingest + noop pass first, so (b) and (c) both run on compiled code: after 5k
# warm-up ticks the first 3M-tick ingest ran at 81-89k/s, a second one at 107-121k/s (the JIT
# compiles the generated parse and write code only after many rows). A live job runs warm.
WARMUP_TICKS = 500_000
PUBLISHER_ONLY_TICKS = 500_000
TOPIC = "bench-ticks"
WARMUP_TOPIC = "bench-warmup"
PUBLISHER_TOPIC = "bench-publisher-only"
LIVE_TOPIC = "bench-live"
# The default (no limit): availableNow takes the whole topic in one micro-batch.
MAX_OFFSETS_PER_TRIGGER = 0
TARGETS = {"ingest_over_ceiling": 0.5, "ingest_ticks_per_s": 100_000, "latency_p95_s": 2.0}
METHOD = {
    "produce": "msgs/s = acknowledged / (first send -> Publisher.close() returned), simulate_records at max speed",
    "generate": "records/s of simulate_records (generate + encode) alone, no Kafka",
    "publisher_only": "msgs/s of Publisher over records encoded beforehand, own topic",
    "ingest": "ticks/s = rows in bronze.ticks / (jobs.ingest.start(available_now=True) -> termination); "
              "tables created beforehand; Spark start-up and an unmeasured warm-up excluded",
    "ceiling": "rows/s of jobs.ingest.read_topic(...).select('value') -> noop sink, availableNow, same session",
    "parse_only": "rows/s of jobs.ingest.parse(...) (parse + validation, every row) -> noop sink (no Delta)",
    "json_only": "rows/s of from_json(value, schemas.TYPED_EVENT) -> noop sink: the JSON parse alone, nothing checked",
    "raw_delta": "rows/s of the same read's Kafka columns (key, value, topic, partition, offset, timestamp), "
                 "unparsed, appended to a Delta table by Spark's streaming Delta sink: what writing Delta alone "
                 "leaves of the ceiling, before any parse, validation or dedup",
    "latency": "per row: DESCRIBE HISTORY timestamp of the version whose add action wrote the row's file "
               "minus kafka_timestamp; continuous ingest query, processingTime trigger = trigger_seconds",
}


# ---- helpers ------------------------------------------------------------------------------------


def _records(count: int | None, seed: int = 0, **kw):
    return simulate_records(SYMBOLS, kw.pop("rate", SIM_RATE), seed=seed, count=count, **kw)


def _timed_first(records: Iterable, box: dict) -> Iterator:
    """Pass records through, noting the monotonic time just before the first one is handed over."""
    for rec in records:
        box.setdefault("t_first", time.monotonic())
        yield rec


# ---- (a) producer -------------------------------------------------------------------------------
def measure_generate(ticks: int) -> dict:
    """Generate + encode the same records as (a) with no Kafka at all: the producer's own ceiling."""
    t0 = time.monotonic()
    n = nbytes = 0
    for rec in _records(ticks, backdate=True):
        n += 1
        nbytes += len(rec.value)
    dt = time.monotonic() - t0
    return {"records": n, "seconds": round(dt, 2), "records_per_s": round(n / dt), "mean_value_bytes": round(nbytes / n, 1)}


def measure_produce(bs: Settings, ticks: int, broker_pid: int | None) -> dict:
    """(a): simulate -> Publisher at max speed, first send -> close() (all acknowledged)."""
    pub = Publisher(bs, "simulate")
    box: dict = {}
    with CpuMeter(broker_pid) as cpu:
        th0 = time.thread_time()
        pub.publish(_timed_first(_records(ticks, backdate=True), box))
        t_queued = time.monotonic()
        counts = pub.close(timeout=300)
        t_end = time.monotonic()
        thread_cpu = time.thread_time() - th0
    dt = t_end - box["t_first"]
    return {"sent": counts.sent, "failed": counts.failed, "seconds": round(dt, 2),
            "msgs_per_s": round(counts.sent / dt), "flush_wait_s": round(t_end - t_queued, 2),
            "python_main_thread_cpu_s": round(thread_cpu, 2), "cpu_s": cpu.cpu, "cores_busy": cpu.cores()}


def measure_publisher_only(bs: Settings, n: int, broker_pid: int | None) -> dict:
    """Publisher over records encoded beforehand (own topic): what Kafka + the client alone can take."""
    ps = dataclasses.replace(bs, topic=PUBLISHER_TOPIC)
    kafka_broker.ensure_topic(ps)
    recs = list(_records(n, seed=1, backdate=True))
    pub = Publisher(ps, "simulate")
    with CpuMeter(broker_pid) as cpu:
        t0 = time.monotonic()
        th0 = time.thread_time()
        pub.publish(recs)
        counts = pub.close(timeout=300)
        dt = time.monotonic() - t0
        thread_cpu = time.thread_time() - th0
    return {"sent": counts.sent, "failed": counts.failed, "seconds": round(dt, 2), "msgs_per_s": round(counts.sent / dt),
            "python_main_thread_cpu_s": round(thread_cpu, 2), "cpu_s": cpu.cpu, "cores_busy": cpu.cores()}


# ---- (b) ingest, (c) ceilings -------------------------------------------------------------------
def _run_ingest(spark, ls: Settings, meter: CpuMeter | None = None) -> dict:
    # The tables exist before the run, as in production (created once); their creation is not timed.
    for t in (tables.TICKS, tables.QUARANTINE):
        ensure_table(spark, t, ls)
    meter = meter or CpuMeter(None)
    with meter:
        t0 = time.monotonic()
        q = ingest.start(spark, ls, available_now=True)
        await_query(q, timeout=1800)
        wall = time.monotonic() - t0
    progress = recent_progress(q)
    return {"wall": wall, "input_rows": sum(int(p.get("numInputRows") or 0) for p in progress),
            "progress": progress}


def _parse_only(ls: Settings):
    def transform(raw):
        import datetime as dt

        # All parsed rows (good and bad), as the job caches them: filtering an uncached parse lets
        # Spark push the filter below the projection and evaluate from_json once per reference.
        return ingest.parse(raw, ls, dt.datetime.now(dt.timezone.utc))
    return transform


def _json_only(raw):
    """The JSON parse alone (ingest's typed schema), nothing validated or written."""
    from pyspark.sql import functions as F

    return raw.select(F.from_json(F.col("value").cast("string"), schemas.TYPED_EVENT.spark_type()).alias("j")
                      ).select("j.*")


RAW_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")


def _run_raw_delta(spark, ls: Settings, name: str) -> dict:
    """availableNow over the lane's topic, the Kafka columns unparsed -> a Delta table of its own."""
    t0 = time.monotonic()
    q = (ingest.read_topic(spark, ls).select(*RAW_COLUMNS).writeStream.queryName(name).format("delta")
         .option("checkpointLocation", f"{ls.checkpoint_uri}/{name}")
         .trigger(availableNow=True).start(f"{ls.lake_uri}/bench/{name}"))
    await_query(q, timeout=1800)
    wall = time.monotonic() - t0
    progress = recent_progress(q)
    rows = sum(int(p.get("numInputRows") or 0) for p in progress)
    return {"rows": rows, "seconds": round(wall, 2), "rows_per_s": round(rows / wall), **batch_summary(progress)}


def warm_up(spark, bs: Settings, root: Path) -> dict:
    """A small unmeasured pass over every code path so that (b) and (c) both run on a warm JVM."""
    ws = lane_settings(bs, root, "warmup", WARMUP_TOPIC)
    kafka_broker.ensure_topic(ws)
    t0 = time.monotonic()
    pub = Publisher(ws, "simulate")
    pub.publish(_records(WARMUP_TICKS, seed=2, backdate=True))
    pub.close()
    _run_ingest(spark, ws)
    run_noop(spark, ws, "warmup-noop")
    run_noop(spark, ws, "warmup-parse", _parse_only(ws))
    run_noop(spark, ws, "warmup-json", _json_only)
    _run_raw_delta(spark, ws, "warmup-raw-delta")
    return {"ticks": WARMUP_TICKS, "seconds": round(time.monotonic() - t0, 2)}


def measure_ingest(spark, bs: Settings, ticks: int, broker_pid: int | None) -> dict:
    """(b): the production ingest over the whole topic, then check bronze holds every tick once."""
    meter = CpuMeter(broker_pid, jvm_pid(spark))
    r = _run_ingest(spark, bs, meter)
    wall = r["wall"]
    t0 = time.monotonic()
    ticks_df = spark.read.format("delta").load(tables.TICKS.path(bs))
    rows = ticks_df.count()
    distinct = ticks_df.select("symbol", "event_kind", "id").distinct().count()
    quarantined = spark.read.format("delta").load(tables.QUARANTINE.path(bs)).count()
    files = spark.sql(f"DESCRIBE DETAIL delta.`{tables.TICKS.path(bs)}`").collect()[0]
    return {"rows_in_bronze": rows, "distinct_keys": distinct, "quarantined": quarantined, "expected": ticks,
            "count_ok": rows == ticks == distinct and quarantined == 0,
            "input_rows": r["input_rows"], "seconds": round(wall, 2), "ticks_per_s": round(rows / wall),
            "bronze_files": int(files["numFiles"]), "bronze_bytes": int(files["sizeInBytes"]),
            "verify_seconds": round(time.monotonic() - t0, 2), "cpu_s": meter.cpu, "cores_busy": meter.cores(),
            **batch_summary(r["progress"])}


# ---- (e) latency --------------------------------------------------------------------------------
def _commit_versions(table_path: str) -> tuple[dict[str, int], list[int]]:
    """Data file name -> the Delta version whose `add` action created it, from the JSON log."""
    added: dict[str, int] = {}
    with_removes: list[int] = []
    for f in sorted(Path(table_path, "_delta_log").glob("*.json")):
        version = int(f.stem)
        for line in f.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                added[action["add"]["path"].rsplit("/", 1)[-1]] = version
            elif "remove" in action:
                with_removes.append(version)
    return added, with_removes


def _caught_up(q, s: Settings, hw: dict[str, int]) -> bool:
    p = last_progress(q)
    if not p:
        return False
    end = (p.get("sources") or [{}])[0].get("endOffset")
    end = json.loads(end) if isinstance(end, str) else end
    got = (end or {}).get(s.topic, {})
    return all(int(got.get(part, -1)) >= off for part, off in hw.items())


def measure_latency(spark, bs: Settings, root: Path, seconds: float) -> dict:
    """(e): the continuous ingest query (default processing-time trigger) fed at ~50 ticks/s.

    Which version added a row: ingest only ever inserts (insert-only MERGE, no OPTIMIZE, no
    auto-compaction), so every data file of bronze.ticks is written by exactly one commit and never
    rewritten. The `add` actions of each `_delta_log/<version>.json` therefore map data file ->
    version (checked: a `remove` action anywhere would break that, and the bench then refuses to
    report); each row's file comes from the `_metadata.file_name` column. The commit time of a
    version is Delta's own, `DESCRIBE HISTORY`'s timestamp (the commit file's time on this local
    file system: when the version became visible to readers).
    latency(row) = commit time of its version - its kafka_timestamp (CreateTime, set by the producer
    when the record was handed to librdkafka, so linger and the broker round trip are included).
    """
    from pyspark.sql import functions as F

    ls = lane_settings(bs, root, "live", LIVE_TOPIC)
    kafka_broker.ensure_topic(ls)
    q = ingest.start(spark, ls, available_now=False)
    try:
        # Let the query get past its first (empty) trigger before the first tick is sent.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and last_progress(q) is None:
            if q.exception() is not None:
                raise RuntimeError(f"live ingest failed: {q.exception()}")
            time.sleep(0.2)
        pub = Publisher(ls, "simulate")
        t0 = time.monotonic()
        pub.publish(_records(None, seed=3, rate=LIVE_RATE, duration_s=seconds), speed=1.0)
        counts = pub.close()
        publish_s = time.monotonic() - t0
        hw = high_watermarks(ls)
        deadline = time.monotonic() + 120
        while not _caught_up(q, ls, hw):
            if q.exception() is not None:
                raise RuntimeError(f"live ingest failed: {q.exception()}")
            if time.monotonic() > deadline:
                raise RuntimeError("live ingest did not catch up within 120 s after the last tick")
            time.sleep(0.2)
        progress = recent_progress(q)
    finally:
        if q.isActive:
            q.stop()

    path = tables.TICKS.path(ls)
    added, removes = _commit_versions(path)
    if removes:
        raise RuntimeError(f"versions {removes} of {path} remove files: file -> version mapping is not valid")
    hist = (spark.sql(f"DESCRIBE HISTORY delta.`{path}`")
            .select("version", F.unix_millis("timestamp").alias("commit_ms"), "operation").collect())
    commit_ms = {int(r["version"]): int(r["commit_ms"]) for r in hist}
    versions = spark.createDataFrame([(f, v, commit_ms[v]) for f, v in added.items()],
                                     "file_name string, version bigint, commit_ms bigint")
    rows = (spark.read.format("delta").load(path)
            .select(F.col("_metadata.file_name").alias("file_name"),
                    F.unix_millis("kafka_timestamp").alias("kafka_ms"))
            .join(versions, "file_name", "left")
            .select("version", (F.col("commit_ms") - F.col("kafka_ms")).alias("lat_ms"))
            .collect())
    unmapped = sum(1 for r in rows if r["version"] is None)
    lat = [r["lat_ms"] / 1000.0 for r in rows if r["lat_ms"] is not None]
    # Data commits: appends (WRITE, the live fast path) and MERGEs (replays / re-runs).
    merges = sorted(v for v, r in ((int(h["version"]), h) for h in hist) if r["operation"] in ("MERGE", "WRITE"))
    summary = batch_summary(progress)
    trig = [t for t in summary["trigger_ms_per_batch"]]
    return {"rate_target_per_s": LIVE_RATE, "seconds": seconds, "sent": counts.sent, "failed": counts.failed,
            "publish_seconds": round(publish_s, 2), "rows": len(rows), "unmapped_rows": unmapped,
            "rows_ok": len(rows) == counts.sent and unmapped == 0,
            "p50_s": round(pct(lat, 50), 3), "p95_s": round(pct(lat, 95), 3), "max_s": round(max(lat), 3),
            "min_s": round(min(lat), 3), "commits": len(merges), "trigger_seconds": bs.trigger_seconds,
            "batch_ms_p50": round(pct(trig, 50)), "batch_ms_max": max(trig) if trig else None,
            "batches": summary["batches"], "duration_ms_total": summary["duration_ms_total"]}


# ---- report -------------------------------------------------------------------------------------


def _limits(r: dict) -> dict[str, str]:
    """One line per number: what bounds it, from what this run observed."""
    a, gen, po = r["produce"], r["generate"], r["publisher_only"]
    py_share = a["python_main_thread_cpu_s"] / a["seconds"] if a["seconds"] else 0
    serial = 1 / (1 / gen["records_per_s"] + 1 / po["msgs_per_s"])
    out = {"producer": (
        f"one Python thread does both: main thread {py_share:.0%} busy; generate+encode alone "
        f"{gen['records_per_s']:,}/s, Publisher alone {po['msgs_per_s']:,}/s -> serial {serial:,.0f}/s "
        f"vs {a['msgs_per_s']:,}/s measured; broker {a['cores_busy'].get('broker', 0):.2f} cores")}
    b, c, cp = r["ingest"], r["ceiling"], r["parse_only"]
    parts = a.get("partition_offsets", {})
    used = sum(1 for n in parts.values() if n)
    tasks = r["settings"]["topic_partitions"] + r["machine"]["cpu_count"]
    reads = b["input_rows"] / b["expected"] if b["expected"] else 0
    d = b["duration_ms_total"]
    add_share = d.get("addBatch", 0) / d["triggerExecution"] if d.get("triggerExecution") else 0
    out["ingest"] = (
        f"Spark JVM {b['cores_busy'].get('spark_jvm', 0):.2f} of {r['machine']['cpu_count']} cores busy; "
        f"data in {used} of {len(parts)} topic partitions, split into ~{tasks} read tasks (minPartitions = "
        f"partitions + cores); Kafka source read "
        f"{reads:.1f}x per tick (numInputRows/ticks, >1: the batch is recomputed from Kafka, not taken "
        f"from parsed.persist()); parse+validate alone {cp['rows_per_s']:,}/s; foreachBatch "
        f"(addBatch) {add_share:.0%} of the query time")
    cj = r["json_only"]
    # Seconds per million rows of each layer, from the same run: what parsing and writing add to the read.
    us = {k: 1e6 / v["rows_per_s"] for k, v in (("read", c), ("json", cj), ("parse", cp)) if v["rows_per_s"]}
    write_s = 1e6 / b["ticks_per_s"] - us.get("parse", 0) if b["ticks_per_s"] else 0
    out["ceiling"] = (
        f"Kafka fetch + row conversion only, same read ({tasks} tasks), {c['rows_per_s']:,} rows/s. Per 1M "
        f"ticks: read {us.get('read', 0):.2f} s, + JSON parse {us.get('json', 0) - us.get('read', 0):.2f} s "
        f"(alone {cj['rows_per_s'] / c['rows_per_s']:.2f} of the ceiling), + validation "
        f"{us.get('parse', 0) - us.get('json', 0):.2f} s, + cache, dedup check and Delta write {write_s:.2f} s")
    e = r["latency"]
    out["latency"] = (f"trigger wait (0..{e['trigger_seconds']} s) + micro-batch time (p50 {e['batch_ms_p50']} ms, "
                      f"max {e['batch_ms_max']} ms for ~{e['rows'] / max(e['batches'], 1):.0f} rows/batch): "
                      f"the fixed cost of the foreachBatch jobs + MERGE + Delta commit")
    return out


def _rows(r: dict) -> list[tuple[str, str, str]]:
    m, a, gen, po = r["machine"], r["produce"], r["generate"], r["publisher_only"]
    b, c, cp, e = r["ingest"], r["ceiling"], r["parse_only"], r["latency"]
    ok = lambda cond: "ok" if cond else "MISSED"  # noqa: E731
    rows = [
        ("machine", f"{m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB", ""),
        ("versions", f"Spark {m['spark']}, pyspark {m['pyspark']}, delta-spark {m['delta_spark']}, "
                     f"librdkafka {m['librdkafka']}, Python {m['python']}", ""),
        ("broker / Spark start", f"{r['broker_start_s']:.1f} s / {r['spark_start_s']:.1f} s "
                                 f"(excluded); warm-up {r['warmup']['seconds']:.1f} s", ""),
        ("(a) producer", f"{a['msgs_per_s']:>12,} msgs/s", f"{a['sent']:,} sent, {a['failed']} failed, {a['seconds']} s"),
        ("    topic partitions", "  ".join(f"p{k}: {v:,}" for k, v in a.get("partition_offsets", {}).items()),
         "messages per partition (key = symbol)"),
        ("    generate+encode only", f"{gen['records_per_s']:>12,} records/s", "no Kafka"),
        ("    Publisher only", f"{po['msgs_per_s']:>12,} msgs/s", f"{po['sent']:,} pre-encoded records"),
        ("(b) ingest", f"{b['ticks_per_s']:>12,} ticks/s",
         f"{b['rows_in_bronze']:,} rows in bronze in {b['seconds']} s, {b['batches']} batch(es); "
         f"expected {b['expected']:,}: {'ok' if b['count_ok'] else 'MISMATCH'}; target >= 100,000: "
         f"{ok(b['ticks_per_s'] >= TARGETS['ingest_ticks_per_s'])}"),
        ("(c) ceiling (noop)", f"{c['rows_per_s']:>12,} rows/s", f"{c['rows']:,} rows in {c['seconds']} s"),
        ("    parse+validate (noop)", f"{cp['rows_per_s']:>12,} rows/s", f"{cp['rows']:,} rows in {cp['seconds']} s"),
        ("    JSON parse only (noop)", f"{r['json_only']['rows_per_s']:>12,} rows/s",
         f"{r['json_only']['rows']:,} rows in {r['json_only']['seconds']} s"),
        ("    Kafka columns -> Delta", f"{r['raw_delta']['rows_per_s']:>12,} rows/s",
         f"unparsed: {r['raw_delta']['rows_per_s'] / c['rows_per_s']:.2f} of the ceiling, the most any ingest "
         f"that writes Delta could reach"),
        ("(d) ingest / ceiling", f"{r['ratio']:>12.3f}", f"target >= 0.5: {ok(r['ratio'] >= TARGETS['ingest_over_ceiling'])}"),
        ("(e) latency p50", f"{e['p50_s']:>12.3f} s", f"{e['rows']:,} rows at ~{e['rate_target_per_s']:.0f}/s over "
                                                      f"{e['seconds']:.0f} s, trigger {e['trigger_seconds']} s, {e['commits']} commits"),
        ("    latency p95", f"{e['p95_s']:>12.3f} s", f"target <= 2 s: {ok(e['p95_s'] <= TARGETS['latency_p95_s'])}"),
        ("    latency max", f"{e['max_s']:>12.3f} s", f"min {e['min_s']:.3f} s"),
    ]
    return rows


def ingest_bench(s: Settings, ticks: int, latency_seconds: float, out: Path) -> dict:
    """Run the whole ingest benchmark on a private broker and data dir; print and return the numbers."""
    if ticks <= 0:
        raise ValueError("ticks must be > 0")
    out = Path(out)
    t_all = time.monotonic()
    say = lambda msg: print(f"[{time.monotonic() - t_all:6.1f}s] {msg}", flush=True)  # noqa: E731
    with private_run(s, out, "run-", TOPIC, max_offsets_per_trigger=MAX_OFFSETS_PER_TRIGGER) as run:
        bs, root, broker_pid = run.bs, run.root, run.broker_pid
        r: dict = run_header(run, ticks, TARGETS, METHOD, "max_offsets_per_trigger")
        say(f"broker on {bs.kafka_bootstrap}, data in {root}")

        say(f"(a) generate+encode {ticks:,} records without Kafka")
        r["generate"] = measure_generate(ticks)
        say(f"(a) publish {ticks:,} simulated ticks at max speed")
        r["produce"] = measure_produce(bs, ticks, broker_pid)
        if r["produce"]["sent"] != ticks or r["produce"]["failed"]:
            raise RuntimeError(f"producer sent {r['produce']['sent']} of {ticks} ({r['produce']['failed']} failed)")
        r["produce"]["partition_offsets"] = high_watermarks(bs)
        n_po = min(ticks, PUBLISHER_ONLY_TICKS)
        say(f"(a) Publisher alone over {n_po:,} pre-encoded records")
        r["publisher_only"] = measure_publisher_only(bs, n_po, broker_pid)

        say("Spark session")
        spark = run.start_spark("tickcast-bench", r)

        say("warm-up (unmeasured)")
        r["warmup"] = warm_up(spark, bs, root)
        say(f"(b) ingest {ticks:,} ticks (availableNow)")
        r["ingest"] = measure_ingest(spark, bs, ticks, broker_pid)
        say("(c) ceiling: same topic into noop")
        r["ceiling"] = run_noop(spark, bs, "ceiling")
        say("(c) parse+validate into noop")
        r["parse_only"] = run_noop(spark, bs, "parse-only", _parse_only(bs))
        say("(c) JSON parse alone into noop")
        r["json_only"] = run_noop(spark, bs, "json-only", _json_only)
        say("(c) the Kafka columns unparsed into Delta")
        r["raw_delta"] = _run_raw_delta(spark, bs, "raw-delta")
        r["ratio"] = round(r["ingest"]["ticks_per_s"] / r["ceiling"]["rows_per_s"], 3)
        say(f"(e) latency: {LIVE_RATE:.0f} ticks/s for {latency_seconds:.0f} s, trigger {bs.trigger_seconds} s")
        r["latency"] = measure_latency(spark, bs, root, latency_seconds)
        r["limits"] = _limits(r)
        r["total_seconds"] = round(time.monotonic() - t_all, 1)
        report(r, out, "ingest", _rows(r), "what limits each number:",
               [f"{k:<9} {v}" for k, v in r["limits"].items()])
        return r
