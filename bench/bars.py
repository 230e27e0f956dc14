"""`tickcast bench bars`: ingest + bars throughput, klines backfill speed, idle cost of `tickcast up`.

Like `tickcast bench ingest` (whose helpers it reuses), it runs on a broker and a data directory of
its own (free ports, a temporary folder under `<data_dir>/bench/`, deleted at the end). No pyspark
import at module level.

What is measured (printed, and written to `<out>/bars.json`):
  (a) pipeline: `ticks` simulated ticks (4 base symbols, so both topic partitions get data)
      published at max speed, then `jobs.runner.run(["ingest"], available_now=True)` and
      `run(["bars"], available_now=True)` in the bench's Spark session, each timed and the two
      together; checked: bronze rows == ticks (each key once), bars rows > 0 and as many as the
      minutes the watermark has closed. Compared with the raw-read ceiling of `bench ingest` (the
      topic's value bytes into a noop sink, same session).
  (b) backfill: `jobs.backfill.backfill` over 6 months of 1m klines (`--klines` files, or synthetic
      Binance-format files generated into the temp dir), rows read / s; then the same files again,
      which must insert 0.
  (c) idle: `tickcast up --source simulate --rate 50` as a subprocess (broker already running:
      the bench's own) for `idle_seconds`; the first 60 s are warm-up and discarded. CPU in cores
      and RSS of every process of the stack (driver Python, its Spark JVM, the producer, the
      broker) from psutil, batch durations per query from ops.stream_progress. It runs first, while
      the bench's own Spark JVM does not exist yet, so nothing of the bench competes with it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.measure import (CpuMeter, private_run, run_header, batch_summary, high_watermarks, jvm_pid, lane_settings, pct,
                           report, run_noop)
from jobs.backfill import backfill
from tickcast.lake.write import ensure_table
from jobs.runner import run
from producers.publisher import Publisher
from producers.sources import simulate_records
from stack.readings import table_rows
from tickcast import kafka_broker, tables
from tickcast.timeunits import MINUTE_MS
from tickcast.settings import REPO_ROOT, Settings

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
SIM_RATE = 50.0            # trade-time rate of the simulator; at max speed it only spreads the timestamps
WARMUP_TICKS = 5_000
TOPIC = "bench-bars-ticks"
WARMUP_TOPIC = "bench-bars-warmup"
IDLE_TOPIC = "bench-bars-idle"
KLINE_SYMBOL = "BTCUSDT"
KLINE_MONTHS = [(2024, m) for m in range(1, 7)]     # 262,080 one-minute rows
IDLE_RATE = 50.0
IDLE_WARMUP_S = 60.0      # the JIT compiles most of the hot code in the first minute or two
IDLE_SAMPLE_S = 2.0
TARGETS = {"idle_cores": 1.0}
METHOD = {
    "pipeline": "ticks/s = ticks / wall time of jobs.runner.run([job], available_now=True, spark=bench session), "
                "ingest then bars; tables created beforehand; Spark start-up and an unmeasured warm-up excluded; "
                "query_s = sum of the queries' triggerExecution (the runner adds its 0.5 s poll and a progress flush)",
    "ceiling": "rows/s of jobs.ingest.read_topic(...).select('value') -> noop sink, availableNow, same session",
    "backfill": "rows/s = rows read / wall time of jobs.backfill.backfill(spark, s, files) on an empty table; "
                "then the same files again (all rows present)",
    "idle": "`tickcast up --source simulate --rate 50` subprocess; after a 60 s warm-up: cores = sum over the "
            "stack's processes of psutil cpu_times (user+system) deltas / wall; RSS sampled every 2 s; batch "
            "durations = ops.stream_progress batch_duration_ms of the measured span",
}


def _say(t0: float):
    return lambda msg: print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---- (a) ingest + bars --------------------------------------------------------------------------
def _publish(ls: Settings, ticks: int, seed: int = 0) -> dict:
    kafka_broker.ensure_topic(ls)
    pub = Publisher(ls, "simulate")
    t0 = time.monotonic()
    pub.publish(simulate_records(SYMBOLS, rate=SIM_RATE, seed=seed, count=ticks, backdate=True))
    counts = pub.close(timeout=300)
    dt_s = time.monotonic() - t0
    if counts.sent != ticks or counts.failed:
        raise RuntimeError(f"producer sent {counts.sent} of {ticks} ({counts.failed} failed)")
    return {"sent": counts.sent, "seconds": round(dt_s, 2), "msgs_per_s": round(counts.sent / dt_s),
            "partition_offsets": high_watermarks(ls)}


def _ensure_tables(spark, ls: Settings) -> None:
    for t in (tables.TICKS, tables.QUARANTINE, tables.BARS, tables.STREAM_PROGRESS):
        ensure_table(spark, t, ls)


def _run_jobs(spark, ls: Settings, names: list[str]) -> float:
    """jobs.runner.run(available_now) as `tickcast job --available-now` runs it; returns wall seconds."""
    # The runner installs SIGINT/SIGTERM handlers that only set its stop event: put ours back
    # afterwards, and turn a Ctrl-C that stopped the jobs early into an interrupt of the bench.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        run(names, ls, available_now=True, spark=spark, stop_event=stop)
        wall = time.monotonic() - t0
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    if stop.is_set():
        raise KeyboardInterrupt
    return wall


def _progress_rows(spark, ls: Settings) -> dict[str, list[dict]]:
    """ops.stream_progress of this lane: the queries' progress events, per query name."""
    out: dict[str, list[dict]] = {}
    for r in (spark.read.format("delta").load(tables.STREAM_PROGRESS.path(ls))
              .select("query_name", "progress_json").orderBy("timestamp").collect()):
        out.setdefault(r["query_name"], []).append(json.loads(r["progress_json"]))
    return out


def _query_summary(progress: list[dict]) -> dict:
    trig = [int((p.get("durationMs") or {}).get("triggerExecution", 0)) for p in progress]
    return {"query_s": round(sum(trig) / 1000, 2), "input_rows": sum(int(p.get("numInputRows") or 0) for p in progress),
            **batch_summary(progress)}


def warm_up(spark, bs: Settings, root: Path) -> dict:
    """A small unmeasured pass through every code path of (a), so that it runs on a warm JVM."""
    ws = lane_settings(bs, root, "warmup", WARMUP_TOPIC)
    t0 = time.monotonic()
    _publish(ws, WARMUP_TICKS, seed=2)
    _ensure_tables(spark, ws)
    _run_jobs(spark, ws, ["ingest"])
    _run_jobs(spark, ws, ["bars"])
    run_noop(spark, ws, "warmup-noop")
    return {"ticks": WARMUP_TICKS, "seconds": round(time.monotonic() - t0, 2)}


def expected_bars(spark, ls: Settings) -> int:
    """(symbol, minute)s of bronze.ticks whose end the final watermark has passed: what bars must hold."""
    from pyspark.sql import functions as F

    t = spark.read.format("delta").load(tables.TICKS.path(ls))
    # In epoch ms: collected timestamps are naive local times.
    latest = t.agg(F.max(F.unix_millis("trade_time"))).first()[0]
    if latest is None:
        return 0
    wm_ms = latest - ls.watermark_seconds * 1000
    minutes = t.select("symbol", F.floor(F.unix_millis("trade_time") / MINUTE_MS).alias("m")).distinct()
    return minutes.where((F.col("m") + 1) * MINUTE_MS <= wm_ms).count()


def measure_pipeline(spark, bs: Settings, ticks: int, broker_pid: int | None) -> dict:
    """(a): publish, then ingest and bars with available-now through the runner; verify the tables."""
    from pyspark.sql import functions as F

    r: dict = {"expected": ticks, "publish": _publish(bs, ticks)}
    _ensure_tables(spark, bs)
    jvm = jvm_pid(spark)
    with CpuMeter(broker_pid, jvm) as m_ingest:
        ingest_s = _run_jobs(spark, bs, ["ingest"])
    with CpuMeter(broker_pid, jvm) as m_bars:
        bars_s = _run_jobs(spark, bs, ["bars"])
    total = ingest_s + bars_s
    t0 = time.monotonic()
    ticks_df = spark.read.format("delta").load(tables.TICKS.path(bs))
    bars_df = spark.read.format("delta").load(tables.BARS.path(bs))
    n_ticks = ticks_df.count()
    distinct = ticks_df.select("symbol", "event_kind", "id").distinct().count()
    quarantined = spark.read.format("delta").load(tables.QUARANTINE.path(bs)).count()
    n_bars = bars_df.count()
    bars_distinct = bars_df.select("symbol", "window_start").distinct().count()
    want_bars = expected_bars(spark, bs)
    symbols = sorted(x[0] for x in bars_df.select("symbol").distinct().collect())
    complete = bars_df.where(F.col("is_complete")).count()
    progress = _progress_rows(spark, bs)
    r |= {
        "ingest": {"seconds": round(ingest_s, 2), "ticks_per_s": round(n_ticks / ingest_s),
                   "cpu_s": m_ingest.cpu, "cores_busy": m_ingest.cores(), **_query_summary(progress.get("ingest", []))},
        "bars": {"seconds": round(bars_s, 2), "ticks_per_s": round(n_ticks / bars_s),
                 "cpu_s": m_bars.cpu, "cores_busy": m_bars.cores(), **_query_summary(progress.get("bars", []))},
        "total": {"seconds": round(total, 2), "ticks_per_s": round(n_ticks / total)},
        "rows_in_bronze": n_ticks, "distinct_keys": distinct, "quarantined": quarantined,
        "bars_rows": n_bars, "bars_distinct": bars_distinct, "bars_expected": want_bars,
        "bars_complete": complete, "bars_symbols": symbols,
        "count_ok": n_ticks == ticks == distinct and quarantined == 0,
        "bars_ok": 0 < n_bars == bars_distinct == want_bars,
        "verify_seconds": round(time.monotonic() - t0, 2),
    }
    return r


# ---- (b) backfill -------------------------------------------------------------------------------
def write_klines(folder: Path, symbol: str = KLINE_SYMBOL, months=KLINE_MONTHS, seed: int = 0) -> list[Path]:
    """Synthetic Binance 1m kline files, one a month: 12 columns, no header, ms times, 8 decimals.

    Prices follow a random walk; high/low bracket open and close; volumes are positive with the
    taker-buy share below the total, so every row is one the production reader must accept.
    """
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    price = 42_000.0
    paths = []
    for year, month in months:
        start = dt.datetime(year, month, 1, tzinfo=dt.timezone.utc)
        end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.timezone.utc)
        t0 = int(start.timestamp() * 1000)
        n = int((end - start).total_seconds()) // 60
        open_time = t0 + np.arange(n, dtype=np.int64) * MINUTE_MS
        close = price * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
        open_ = np.concatenate([[price], close[:-1]])
        price = float(close[-1])
        wick = np.abs(rng.normal(0.0, 0.0004, (2, n))) * open_
        high = np.maximum(open_, close) + wick[0]
        low = np.minimum(open_, close) - wick[1]
        volume = rng.gamma(2.0, 10.0, n) + 0.001
        vwap = (open_ + high + low + close) / 4
        buy_share = rng.uniform(0.2, 0.8, n)
        frame = pd.DataFrame({
            "open_time": open_time, "open": open_, "high": high, "low": low, "close": close,
            "volume": volume, "close_time": open_time + 59_999, "quote_volume": volume * vwap,
            "trade_count": rng.poisson(1_000, n) + 1, "taker_buy_volume": volume * buy_share,
            "taker_buy_quote_volume": volume * vwap * buy_share, "ignore": np.zeros(n, dtype=np.int64)})
        path = folder / f"{symbol}-1m-{year:04d}-{month:02d}.csv.gz"
        frame.to_csv(path, header=False, index=False, float_format="%.8f", compression="gzip")
        paths.append(path)
    return paths


def measure_backfill(spark, bs: Settings, root: Path, files: list[Path] | None) -> dict:
    """(b): backfill the files into an empty table, then again (everything already there)."""
    r: dict = {}
    if not files:
        t0 = time.monotonic()
        files = write_klines(root / "klines")
        r["generated"] = {"files": len(files), "symbol": KLINE_SYMBOL, "months": [f"{y}-{m:02d}" for y, m in KLINE_MONTHS],
                          "seconds": round(time.monotonic() - t0, 2)}
    ls = lane_settings(bs, root, "backfill", bs.topic)
    jvm = jvm_pid(spark)
    with CpuMeter(None, jvm) as m1:
        first = backfill(spark, ls, list(files))
    with CpuMeter(None, jvm) as m2:
        second = backfill(spark, ls, list(files))
    rows = spark.read.format("delta").load(tables.BARS.path(ls)).count()
    r |= {
        "files": [str(f) for f in files], "bytes": sum(Path(f).stat().st_size for f in files),
        "first": {**first, "seconds": round(m1.wall, 2), "rows_per_s": round(first["rows_read"] / m1.wall),
                  "cores_busy": m1.cores()},
        "second": {**second, "seconds": round(m2.wall, 2), "rows_per_s": round(second["rows_read"] / m2.wall),
                   "cores_busy": m2.cores()},
        "rows_in_table": rows,
        "ok": first["inserted"] == rows > 0 and second["inserted"] == 0
              and second["already_present"] == second["rows_read"],
    }
    return r


# ---- (c) idle cost of the local pipeline --------------------------------------------------------
ROLES = ("driver_python", "spark_jvm", "producer", "broker", "other")


def up_command(rate: float = IDLE_RATE) -> list[str]:
    """What `tickcast up` runs with the simulator, as a subprocess (the bench's broker is reused)."""
    return [sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate", "--rate", str(rate),
            "--jobs", "ingest,bars"]


def _role(p, driver_pid: int, broker_pid: int | None) -> str:
    if p.pid == driver_pid:
        return "driver_python"
    if p.pid == broker_pid:
        return "broker"
    try:
        cmd = " ".join(p.cmdline())
    except Exception:  # gone or not readable: counted as other
        return "other"
    if "org.apache.spark.deploy.SparkSubmit" in cmd:
        return "spark_jvm"
    if "tickcast.cli produce" in cmd:
        return "producer"
    return "other"


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process (digits folded: 'GC Thread#1' -> 'GC Thread#N')."""
    out: dict[str, float] = {}
    tck = os.sysconf("SC_CLK_TCK")
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for t in tasks:
        try:
            name = re.sub(r"\d+", "N", (t / "comm").read_text().strip())
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(f[11]) + int(f[12])) / tck
        except (OSError, IndexError, ValueError):
            continue
    return out


class _StackSampler:
    """CPU seconds and RSS per process of the stack, sampled; pids are found afresh each time."""

    def __init__(self, driver_pid: int, broker_pid: int | None):
        import psutil

        self.psutil, self.driver_pid, self.broker_pid = psutil, driver_pid, broker_pid
        self.cpu: dict[int, tuple[str, float]] = {}      # pid -> (role, latest cpu seconds)
        self.rss: list[dict[str, int]] = []               # per sample: role -> bytes

    def procs(self):
        ps = []
        for pid in (self.driver_pid, self.broker_pid):
            if not pid:
                continue
            try:
                p = self.psutil.Process(pid)
                ps += [p, *p.children(recursive=True)]
            except self.psutil.NoSuchProcess:
                pass
        return ps

    def sample(self, keep_rss: bool = True) -> dict[int, tuple[str, float]]:
        rss = dict.fromkeys(ROLES, 0)
        for p in self.procs():
            try:
                with p.oneshot():
                    t, m, ppid = p.cpu_times(), p.memory_info().rss, p.ppid()
                role = self.cpu[p.pid][0] if p.pid in self.cpu else _role(p, self.driver_pid, self.broker_pid)
            except self.psutil.NoSuchProcess:
                continue
            # A child the JVM has forked but not yet exec'd (Hadoop's local file system runs
            # shell commands) still shows the JVM's command line and shares its pages: counting
            # its RSS would double the JVM's for that instant.
            if role == "spark_jvm" and self.cpu.get(ppid, ("",))[0] == "spark_jvm":
                self.cpu.pop(p.pid, None)
                continue
            self.cpu[p.pid] = (role, t.user + t.system)
            rss[role] += m
        if keep_rss:
            self.rss.append(rss)
        return dict(self.cpu)

    def others(self) -> list[str]:
        """What the processes counted as `other` are (their command lines, shortened)."""
        out = []
        for pid, (role, _) in self.cpu.items():
            if role == "other":
                try:
                    out.append(f"{pid}: {' '.join(self.psutil.Process(pid).cmdline())[:120]}")
                except self.psutil.Error:
                    out.append(f"{pid}: (gone)")
        return out

    def pid_of(self, role: str) -> int | None:
        return next((pid for pid, (r, _) in self.cpu.items() if r == role), None)


def _stop_up(proc: subprocess.Popen, sampler: _StackSampler, timeout: float = 90.0) -> float:
    """SIGINT, as Ctrl-C would; the whole group of our child only if it does not stop in time."""
    producer = sampler.pid_of("producer")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    # `up` stops its producer; a producer left behind by a killed `up` is stopped here, by its pid.
    if producer:
        try:
            os.kill(producer, signal.SIGINT)
        except ProcessLookupError:
            pass
    return round(time.monotonic() - t0, 1)


def _read_progress_rs(path: str, since: dt.datetime, until: dt.datetime) -> dict[str, list[dict]]:
    """ops.stream_progress rows of batches started in [since, until), by query name, via delta-rs (no JVM)."""
    from deltalake import DeltaTable

    df = DeltaTable(path).to_pandas(columns=["query_name", "timestamp", "progress_json"])
    df = df[(df["timestamp"] >= since) & (df["timestamp"] < until)].sort_values("timestamp")
    out: dict[str, list[dict]] = {}
    for name, js in zip(df["query_name"], df["progress_json"]):
        out.setdefault(name, []).append(json.loads(js))
    return out


def _idle_query_stats(progress: list[dict], wall: float) -> dict:
    trig = [int((p.get("durationMs") or {}).get("triggerExecution", 0)) for p in progress]
    with_rows = [t for t, p in zip(trig, progress) if int(p.get("numInputRows") or 0) > 0]
    empty = [t for t, p in zip(trig, progress) if int(p.get("numInputRows") or 0) == 0]
    phases: dict[str, int] = {}
    for p in progress:
        for k, v in (p.get("durationMs") or {}).items():
            phases[k] = phases.get(k, 0) + int(v)
    return {"batches": len(progress), "batches_with_rows": len(with_rows), "batches_empty": len(empty),
            "rows": sum(int(p.get("numInputRows") or 0) for p in progress),
            "batch_ms_p50": round(pct(trig, 50)) if trig else None,
            "batch_ms_p95": round(pct(trig, 95)) if trig else None,
            "batch_ms_max": max(trig) if trig else None,
            "empty_batch_ms_p50": round(pct(empty, 50)) if empty else None,
            "busy_share": round(sum(trig) / 1000 / wall, 3) if wall else None,
            "duration_ms_total": phases}


def measure_idle(bs: Settings, root: Path, seconds: float, broker_pid: int | None,
                 cmd: list[str] | None = None, name: str = "idle", say=print,
                 ready=None, ready_timeout: float = 1200.0) -> dict:
    """(c): run the stack of `tickcast up` at ~50 ticks/s; CPU, memory and batch times after warm-up.

    `cmd` replaces the `tickcast up` command (for trying a variant of the same stack). The warm-up
    lasts IDLE_WARMUP_S, and with `ready(lane_settings) -> bool` until that also holds (e.g. the
    first prediction); then `seconds - IDLE_WARMUP_S` are measured.
    """
    if seconds <= IDLE_WARMUP_S:
        raise ValueError(f"idle seconds must be > the {IDLE_WARMUP_S:.0f} s warm-up, got {seconds}")
    ls = lane_settings(bs, root, name, IDLE_TOPIC + "-" + name)
    log = root / f"{name}-up.log"
    cmd = cmd or up_command()
    load_before = _load()
    with open(log, "ab") as out:
        # cwd = the checkout, so `python -m tickcast.cli` is this code; its own session, so a Ctrl-C
        # at the terminal reaches the bench only and the bench stops the stack itself.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=ls.child_env(), cwd=REPO_ROOT, start_new_session=True)
    sampler = _StackSampler(proc.pid, broker_pid)
    t_launch = time.monotonic()
    base: dict[int, tuple[str, float]] | None = None
    threads0: dict[str, float] = {}
    t_base = t_end = 0.0
    since = dt.datetime.now(dt.timezone.utc)
    try:
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                raise RuntimeError(f"the stack exited early (code {proc.returncode}); see {log}:\n"
                                   + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
            if base is None and now - t_launch > ready_timeout:
                raise RuntimeError(f"the stack was not ready after {ready_timeout:.0f} s; see {log}")
            if base is None and now - t_launch >= IDLE_WARMUP_S and (ready is None or ready(ls)):
                base, t_base = sampler.sample(keep_rss=False), time.monotonic()
                since = dt.datetime.now(dt.timezone.utc)
                jvm = sampler.pid_of("spark_jvm")
                threads0 = _thread_cpu(jvm) if jvm else {}
                say(f"    warm-up over; measuring {seconds - IDLE_WARMUP_S:.0f} s (load {_load()})")
            elif base is not None:
                sampler.sample()
            if base is not None and now - t_base >= seconds - IDLE_WARMUP_S:
                final, t_end = sampler.sample(), time.monotonic()
                until = dt.datetime.now(dt.timezone.utc)
                others = sampler.others()
                jvm = sampler.pid_of("spark_jvm")
                threads1 = _thread_cpu(jvm) if jvm else {}
                break
            time.sleep(IDLE_SAMPLE_S)
    finally:
        stop_s = _stop_up(proc, sampler)
    wall = t_end - t_base
    cores = dict.fromkeys(ROLES, 0.0)
    for pid, (role, c) in final.items():
        c0 = base.get(pid, (role, 0.0))[1]   # a process born during the span: all of its CPU is in it
        cores[role] += (c - c0) / wall
    cores = {k: round(v, 3) for k, v in cores.items() if v or k != "other"}
    total_rss = [sum(s.values()) for s in sampler.rss]
    rss = {role: {"avg_gib": round(sum(s[role] for s in sampler.rss) / len(sampler.rss) / 2**30, 3),
                  "peak_gib": round(max(s[role] for s in sampler.rss) / 2**30, 3)} for role in ROLES}
    threads = {k: round((v - threads0.get(k, 0.0)) / wall, 3) for k, v in threads1.items()}
    threads = dict(sorted(((k, v) for k, v in threads.items() if v >= 0.005), key=lambda kv: -kv[1])[:12])
    # Batches that started in the measured span (the queries run on until the stack has stopped).
    progress = _read_progress_rs(tables.STREAM_PROGRESS.path(ls), since, until)
    rows = table_rows(ls)
    return {
        "command": cmd[1:] if cmd[0] == sys.executable else cmd, "seconds": seconds,
        "warmup_s": round(t_base - t_launch, 1), "since": since.isoformat(), "until": until.isoformat(),
        "measured_s": round(wall, 1), "samples": len(sampler.rss), "stop_s": stop_s,
        "load_before": load_before, "load_after": _load(),
        "cores_total": round(sum(cores.values()), 3), "cores": cores,
        "rss_avg_gib": round(sum(total_rss) / len(total_rss) / 2**30, 3),
        "rss_peak_gib": round(max(total_rss) / 2**30, 3), "rss": rss,
        "spark_jvm_threads_cores": threads, "other_processes": others,
        "queries": {q: _idle_query_stats(p, wall) for q, p in sorted(progress.items())},
        "rows": rows, "ticks_per_s": round(rows.get("bronze.ticks", 0) / max(time.monotonic() - t_launch, 1), 1),
        "ok": rows.get("bronze.ticks", 0) > 0 and rows.get("silver.bars_1m", 0) > 0,
    }


# ---- report -------------------------------------------------------------------------------------
# JVM thread names (as /proc shows them, 15 characters) -> what they do here.
THREADS = {"Thread-N": "py4j: the driver's Python calls", "CN CompilerThre": "JIT compiler",
           "stream executio": "micro-batch planning and Delta commits", "Executor task l": "Spark tasks",
           "GC Thread#N": "GC"}


def _why(r: dict) -> list[str]:
    """What the run says about where the time and the CPU go."""
    a, c = r["pipeline"], r["idle"]
    out = [f"pipeline: ingest {a['ingest']['seconds']} s (queries {a['ingest']['query_s']} s), "
           f"bars {a['bars']['seconds']} s (queries {a['bars']['query_s']} s); Spark JVM "
           f"{a['ingest']['cores_busy'].get('spark_jvm', 0):.2f} / {a['bars']['cores_busy'].get('spark_jvm', 0):.2f} "
           f"cores busy; the rest of the wall time is the runner's 0.5 s poll and its progress flush"]
    top = max(c["cores"], key=c["cores"].get)
    out.append(f"idle: {c['cores_total']:.2f} cores, {c['cores'][top]:.2f} of them in {top}; JVM threads: "
               + ", ".join(f"{THREADS.get(k, k)} {v:.2f}" for k, v in list(c["spark_jvm_threads_cores"].items())[:5]))
    for q, st in c["queries"].items():
        trig = r["settings"]["trigger_seconds"]
        if st["busy_share"] is not None and st["busy_share"] >= 0.9:
            out.append(f"idle: {q} is busy {st['busy_share']:.0%} of the time: its batches (p50 {st['batch_ms_p50']} ms) "
                       f"outlast the {trig:g} s trigger, so it runs back to back and takes any CPU left free")
        elif st["batches_empty"]:
            out.append(f"idle: {q} ran {st['batches_empty']} of {st['batches']} batches with no input rows "
                       f"(p50 {st['empty_batch_ms_p50']} ms each), busy {st['busy_share']:.0%} of the time")
    return out


def _rows(r: dict) -> list[tuple[str, str, str]]:
    m, a, b, c = r["machine"], r["pipeline"], r["backfill"], r["idle"]
    ok = lambda cond: "ok" if cond else "MISSED"  # noqa: E731
    fmt_q = lambda q: (f"p50 {q['batch_ms_p50']} ms, p95 {q['batch_ms_p95']} ms, max {q['batch_ms_max']} ms; "  # noqa: E731
                       f"{q['batches']} batches ({q['batches_empty']} empty), busy {q['busy_share']:.0%}")
    rows = [
        ("machine", f"{m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB", ""),
        ("versions", f"Spark {m['spark']}, delta-spark {m['delta_spark']}, Python {m['python']}", ""),
        ("load average", f"{r['load']['start']} at start, {r['load']['end']} at end", ""),
        ("broker / Spark start", f"{r['broker_start_s']:.1f} s / {r['spark_start_s']:.1f} s (excluded); "
                                 f"warm-up {r['warmup']['seconds']:.1f} s", ""),
        ("(a) publish", f"{a['publish']['msgs_per_s']:>10,} msgs/s",
         f"{a['publish']['sent']:,} ticks, {len(SYMBOLS)} symbols; partitions "
         + " ".join(f"p{k}: {v:,}" for k, v in a["publish"]["partition_offsets"].items())),
        ("    ingest", f"{a['ingest']['ticks_per_s']:>10,} ticks/s",
         f"{a['ingest']['seconds']} s, {a['ingest']['batches']} batch(es); bronze {a['rows_in_bronze']:,} rows, "
         f"expected {a['expected']:,}: {'ok' if a['count_ok'] else 'MISMATCH'}"),
        ("    bars", f"{a['bars']['ticks_per_s']:>10,} ticks/s",
         f"{a['bars']['seconds']} s, {a['bars']['batches']} batch(es); {a['bars_rows']:,} bars "
         f"({a['bars_complete']:,} complete), closed minutes {a['bars_expected']:,}: {'ok' if a['bars_ok'] else 'MISMATCH'}"),
        ("    ingest + bars", f"{a['total']['ticks_per_s']:>10,} ticks/s", f"{a['total']['seconds']} s"),
        ("    ceiling (noop)", f"{r['ceiling']['rows_per_s']:>10,} rows/s",
         f"{r['ceiling']['rows']:,} rows in {r['ceiling']['seconds']} s"),
        ("    (ingest+bars)/ceiling", f"{r['ratio']:>10.3f}", f"ingest alone / ceiling {r['ratio_ingest']:.3f}"),
    ]
    gen = b.get("generated")
    rows += [
        ("(b) backfill", f"{b['first']['rows_per_s']:>10,} rows/s",
         f"{b['first']['rows_read']:,} klines ({len(b['files'])} files"
         + (f", synthetic {gen['months'][0]}..{gen['months'][-1]}" if gen else "")
         + f") in {b['first']['seconds']} s, inserted {b['first']['inserted']:,}"),
        ("    again (all present)", f"{b['second']['rows_per_s']:>10,} rows/s",
         f"{b['second']['seconds']} s, inserted {b['second']['inserted']}: {'ok' if b['ok'] else 'MISMATCH'}"),
        ("(c) idle CPU", f"{c['cores_total']:>10.2f} cores",
         f"{c['measured_s']:.0f} s after {c['warmup_s']:.0f} s warm-up; target <= {TARGETS['idle_cores']:.0f}: "
         f"{ok(c['cores_total'] <= TARGETS['idle_cores'])}"),
        ("    per process", "  ".join(f"{k} {v:.2f}" for k, v in c["cores"].items()), ""),
        ("    memory (RSS)", f"{c['rss_avg_gib']:>7.2f} GiB avg",
         f"peak {c['rss_peak_gib']:.2f} GiB; " + ", ".join(f"{k} {v['avg_gib']:.2f}"
                                                          for k, v in c["rss"].items() if v["avg_gib"])),
    ]
    for q, s in c["queries"].items():
        rows.append((f"    {q} batches", fmt_q(s), ""))
    rows.append(("    rows", " ".join(f"{k}={v:,}" for k, v in c["rows"].items()),
                 f"~{c['ticks_per_s']:.0f} ticks/s over the run; ticks and bars written: {'ok' if c['ok'] else 'MISSED'}"))
    return rows


def bars_bench(s: Settings, ticks: int, klines: list[Path], idle_seconds: float, out: Path) -> dict:
    """Run the bars benchmark on a private broker and data dir; print and return the numbers."""
    if ticks <= 0:
        raise ValueError("ticks must be > 0")
    if idle_seconds <= IDLE_WARMUP_S:
        raise ValueError(f"idle seconds must be > {IDLE_WARMUP_S:.0f} (the warm-up)")
    out = Path(out)
    t_all = time.monotonic()
    say = _say(t_all)
    load_start = _load()
    with private_run(s, out, "bars-", TOPIC, max_offsets_per_trigger=0) as run:
        bs, root, broker_pid = run.bs, run.root, run.broker_pid
        r: dict = run_header(run, ticks, TARGETS, METHOD, "watermark_seconds")
        r["load"] = {"start": load_start}
        say(f"broker on {bs.kafka_bootstrap}, data in {root}")

        say(f"(c) idle: `tickcast up` at ~{IDLE_RATE:.0f} ticks/s for {idle_seconds:.0f} s "
            f"({IDLE_WARMUP_S:.0f} s warm-up), before the bench's own Spark exists")
        r["idle"] = measure_idle(bs, root, idle_seconds, broker_pid, say=say)

        say("Spark session")
        spark = run.start_spark("tickcast-bench-bars", r)
        say("warm-up (unmeasured)")
        r["warmup"] = warm_up(spark, bs, root)

        say(f"(a) publish {ticks:,} ticks, then ingest and bars (available-now) through the runner")
        r["pipeline"] = measure_pipeline(spark, bs, ticks, broker_pid)
        say("(a) ceiling: same topic into noop")
        r["ceiling"] = run_noop(spark, bs, "ceiling")
        r["ratio"] = round(r["pipeline"]["total"]["ticks_per_s"] / r["ceiling"]["rows_per_s"], 3)
        r["ratio_ingest"] = round(r["pipeline"]["ingest"]["ticks_per_s"] / r["ceiling"]["rows_per_s"], 3)

        say("(b) backfill " + (f"{len(klines)} kline file(s)" if klines else "6 months of synthetic 1m klines"))
        r["backfill"] = measure_backfill(spark, bs, root, klines)

        r["load"]["end"] = _load()
        r["why"] = _why(r)
        r["total_seconds"] = round(time.monotonic() - t_all, 1)
        report(r, out, "bars", _rows(r), "why:", r["why"], rule=110)
        return r
