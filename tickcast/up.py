"""`tickcast up`: the whole local pipeline in one command; Ctrl-C stops everything cleanly."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from tickcast import kafka_broker
from tickcast.settings import Settings

JOBS = ["ingest", "bars", "features", "predict", "outcomes"]


def _producer_cmd(source: str, files: list[Path], rate: float, symbols: str) -> list[str]:
    cmd = [sys.executable, "-m", "tickcast.cli", "produce", "--source", source]
    if source == "replay":
        for f in files:
            cmd += ["--file", str(f)]
    elif source == "live":
        cmd += ["--symbols", symbols]
    else:
        # Offline, the simulator plants the signal the bootstrap model was trained on (-SIMSIG), so
        # the live predictions have a real, known edge to find (docs/simulator.md).
        from tickcast.bootstrap import SIM_SIGNAL

        cmd += ["--rate", str(rate), "--symbols", symbols, "--plant-signal",
                "--signal-kind", SIM_SIGNAL["signal_kind"], "--signal-strength", str(SIM_SIGNAL["signal_strength"])]
    return cmd


def table_rows(s: Settings) -> dict[str, int]:
    """Rows per table from the Delta log's file statistics (delta-rs: no scan, no JVM)."""
    from deltalake import DeltaTable

    from tickcast import tables

    out = {}
    for t in (tables.TICKS, tables.QUARANTINE, tables.BARS, tables.FEATURES, tables.PREDICTIONS):
        try:
            adds = DeltaTable(t.path(s)).get_add_actions(flatten=True)
            out[t.name] = int(sum(adds.column("num_records").to_pylist() or [0]))
        except Exception:  # not created yet (TableNotFoundError) or being written: show 0, not a crash
            out[t.name] = 0
    return out


def prediction_summary(s: Settings) -> str:
    """The latest prediction and the live hit rate vs the baselines (last hour), from delta-rs reads."""
    from tickcast import lake, tables

    parts = []
    try:
        if lake.exists(tables.PREDICTIONS, s):
            t = lake.read(tables.PREDICTIONS, s, columns=["symbol", "window_start", "horizon", "model_version",
                                                          "prob_up"]).to_pandas()
            if len(t):
                r = t.sort_values("window_start").iloc[-1]
                parts.append(f"pred {r['symbol']} {r['window_start']:%H:%M} h{r['horizon']} "
                             f"P(up)={r['prob_up']:.3f} v{r['model_version']}")
        if lake.exists(tables.MODEL_SCORES, s):
            m = lake.read(tables.MODEL_SCORES, s, filters=[("symbol", "=", "*"), ("window", "=", "1h")]).to_pandas()
            if len(m):
                last = m[m["computed_at"] == m["computed_at"].max()].sort_values("horizon")
                for _, r in last.iterrows():
                    if r["n"]:
                        parts.append(f"hit h{r['horizon']} {r['accuracy']:.1%} (clim {r['climatology_accuracy']:.1%}, "
                                     f"mom {r['momentum_accuracy']:.1%}, n={r['n']})")
    except Exception:  # a table being written or compacted: skip this refresh, never crash the line
        return ""
    return " | ".join(parts)


class StackMeter:
    """CPU (cores, averaged since the last reading) and resident memory of the local stack."""

    def __init__(self, s: Settings, producer_pid: int):
        import psutil

        self.psutil = psutil
        self.pids = [psutil.Process().pid, producer_pid]
        bpid = kafka_broker._read_pid(s)
        if bpid:
            self.pids.append(bpid)
        self._last = (time.monotonic(), self._cpu())

    def _procs(self):
        seen = []
        for pid in self.pids:
            try:
                p = self.psutil.Process(pid)
                seen += [p, *p.children(recursive=True)]
            except self.psutil.NoSuchProcess:
                pass
        return seen

    def _cpu(self) -> float:
        total = 0.0
        for p in self._procs():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except self.psutil.NoSuchProcess:
                pass
        return total

    def describe(self) -> str:
        now, cpu = time.monotonic(), self._cpu()
        t0, c0 = self._last
        cores = (cpu - c0) / (now - t0) if now > t0 and cpu >= c0 else 0.0
        self._last = (now, cpu)
        rss = 0
        for p in self._procs():
            try:
                rss += p.memory_info().rss
            except self.psutil.NoSuchProcess:
                pass
        return f"cpu {cores:.2f} cores, mem {rss / 2**30:.2f} GiB"


def run_up(s: Settings, source: str, files: list[Path], rate: float, symbols: str,
           jobs: list[str] | None = None) -> None:
    jobs = list(jobs or JOBS)
    from jobs.runner import run

    if source == "auto":
        from producers.live import rest_reachable

        if rest_reachable(s, timeout=3.0):
            click.secho(f"tickcast up: Binance answers at {s.binance_rest_url} -> using the LIVE source",
                        fg="green", bold=True)
            source = "live"
        else:
            click.secho(f"tickcast up: Binance is NOT reachable at {s.binance_rest_url}/api/v3/ping within 3 s "
                        "-> using the SIMULATOR (synthetic symbols end in -SIM)", fg="yellow", bold=True)
            source = "simulate"
    if source == "replay" and not files:
        raise click.UsageError("--source replay needs --file")
    try:
        started_broker = kafka_broker._read_pid(s) is None
        click.echo(kafka_broker.start(s).describe())
    except kafka_broker.BrokerError as e:
        raise click.ClickException(str(e)) from None
    log_dir = s.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    plog = open(log_dir / "producer.log", "ab")
    producer = subprocess.Popen(_producer_cmd(source, files, rate, symbols), stdout=plog, stderr=subprocess.STDOUT,
                                env=s.child_env(), start_new_session=True)
    click.echo(f"producer: {source} (pid {producer.pid}, log {log_dir / 'producer.log'})")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t0 = time.monotonic()
    stack = StackMeter(s, producer.pid)
    counts: dict[str, int] = {}
    preds = {"line": ""}
    last_count = 0.0

    def line(last: dict) -> None:
        nonlocal last_count
        if time.monotonic() - last_count > 10:
            counts.update(table_rows(s))
            preds["line"] = prediction_summary(s)
            last_count = time.monotonic()
        parts = [f"{time.monotonic() - t0:5.0f}s"]
        for name, p in last.items():
            src = (p.get("sources") or [{}])[0]
            lag = (src.get("metrics") or {}).get("maxOffsetsBehindLatest", "-")
            rate = f"{p.get('inputRowsPerSecond') or 0:.0f} in/s, " if name == "ingest" else ""
            parts.append(f"{name} {rate}batch {(p.get('durationMs') or {}).get('triggerExecution', 0)} ms"
                         + (f", lag {lag}" if name == "ingest" else ""))
        parts.append("rows " + " ".join(f"{k}={v}" for k, v in counts.items()))
        if preds["line"]:
            parts.append(preds["line"])
        parts.append(stack.describe())
        click.echo("\r" + " | ".join(parts) + "   ", nl=False)

    spark = None
    if source == "live" and s.backfill_lookback_hours > 0:
        # History first, so bars (and features) have the last hours from the first minute. Spark is
        # started here once and reused by the jobs; bars starts after the backfill (one writer).
        from tickcast.cli import rest_backfill
        from tickcast.spark import session

        spark = session(s, app="tickcast-" + "-".join(JOBS))
        try:
            r, dt = rest_backfill(s, [x.strip().upper() for x in symbols.split(",") if x.strip()],
                                  s.backfill_lookback_hours, spark=spark)
            click.echo(f"backfill: {s.backfill_lookback_hours:g} h of 1m klines over REST: read {r['rows_read']}, "
                       f"inserted {r['inserted']} in {dt:.1f}s")
        except click.ClickException as e:
            click.secho(f"backfill skipped: {e.message}", fg="yellow", bold=True)
    try:
        from tickcast.bootstrap import ensure_models
        from tickcast.spark import session

        spark = spark or session(s, app="tickcast-" + "-".join(JOBS))
        spark.sparkContext.setLogLevel("ERROR")
        # Before the streams write bars (one writer per table); live trains on the backfilled klines only.
        if "predict" in jobs:
            ensure_models(spark, s, [x.strip().upper() for x in symbols.split(",") if x.strip()], echo=click.echo,
                          allow_simulated=source != "live")
        # ERROR: Spark's WARN lines (e.g. "batch is falling behind") would break the progress line.
        run(jobs, s, available_now=False, on_progress=line, stop_event=stop, log_level="ERROR", spark=spark)
    finally:
        click.echo("\nstopping: producer, streams" + (", broker" if started_broker else ""))
        producer.send_signal(signal.SIGINT)
        try:
            producer.wait(30)
        except subprocess.TimeoutExpired:
            producer.kill()
        if started_broker:
            kafka_broker.stop(s)
