"""`tickcast up`: the whole local pipeline in one command; Ctrl-C stops everything cleanly.

The broker, producer, service and dashboard run as child processes (their own CLI commands); the
streaming jobs run in this process's Spark driver, which the backfill and the first model share.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import click

from jobs.commands import rest_backfill
from jobs.runner import run
from tickcast.sources.rest import rest_reachable
from stack import JOBS
from stack.bootstrap import SIM_SIGNAL, ensure_models, sim_start_prices
from stack.processes import Children, QuietStderr
from stack.readings import StackMeter, catch_up, lifecycle_summary, prediction_summary, serving_summary, table_rows
from stack.terminal import Terminal
from tickcast import data_loss, kafka_broker, metrics, status
from tickcast.lock import LockHeld, hold_writer_lock
from tickcast.settings import Settings
from tickcast.spark import session


def _producer_cmd(source: str, files: list[Path], rate: float, symbols: str,
                  start_prices: dict[str, float] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "tickcast.cli", "produce", "--source", source]
    if source == "replay":
        for f in files:
            cmd += ["--file", str(f)]
    elif source == "live":
        cmd += ["--symbols", symbols]
    else:
        # Offline, the simulator plants the signal the bootstrap model was trained on (-SIMSIG), so
        # the live predictions have a real, known edge to find (docs/simulator.md).
        cmd += ["--rate", str(rate), "--symbols", symbols, "--plant-signal",
                "--signal-kind", SIM_SIGNAL["signal_kind"], "--signal-strength", str(SIM_SIGNAL["signal_strength"])]
        for base, price in sorted((start_prices or {}).items()):
            cmd += ["--start-price", f"{base}={price!r}"]
    return cmd


# Components started beside the streams as child processes, through their own CLI commands (never
# imported here): name -> (command, URL setting attributes).
COMPONENTS = {"service": (["serve"], "serve_host", "serve_port"),
              "dashboard": (["dashboard"], "dashboard_host", "dashboard_port")}
RETRAINER_NICE = 10     # the retrainer yields the CPU to the streams, the service and the dashboard


def serve_metrics(s: Settings) -> metrics.MetricsServer | None:
    """The stack's /metrics on TICKCAST_METRICS_HOST:PORT (None when the port is 0)."""
    if not s.metrics_port:
        return None
    try:
        return metrics.MetricsServer(s.metrics_host, s.metrics_port)
    except OSError as e:
        raise click.ClickException(f"TICKCAST_METRICS_PORT: cannot listen on {s.metrics_host}:{s.metrics_port} "
                                   f"({e.strerror or e}); set another port, or 0 for none") from None


def _registry(s: Settings, memo: dict):
    """The MLflow client, made once (None while the store cannot be opened: the panel then says nothing)."""
    if memo.get("registry") is None:
        try:
            from tickcast import model_io  # deferred: heavy (mlflow)

            memo["registry"] = model_io.configure(s)
        except Exception:
            return None
    return memo["registry"]


def _resolve_source(s: Settings, source: str, term: Terminal) -> str:
    if source != "auto":
        return source
    if rest_reachable(s, timeout=3.0):
        term.say(f"tickcast up: Binance answers at {s.binance_rest_url} -> using the LIVE source", fg="green", bold=True)
        return "live"
    term.say(f"tickcast up: Binance is NOT reachable at {s.binance_rest_url}/api/v3/ping within 3 s "
             "-> using the SIMULATOR (synthetic symbols end in -SIM)", fg="yellow", bold=True)
    return "simulate"


def run_up(s: Settings, source: str, files: list[Path], rate: float, symbols: str,
           jobs: list[str] | None = None, verbose: bool = False, status_every: float = 10.0,
           components: bool = True) -> None:
    jobs = list(jobs or JOBS)
    log_dir = s.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    term = Terminal(status_every, stop)
    if source == "replay" and not files:
        raise click.UsageError("--source replay needs --file")
    try:  # one writer per data directory: a second `up` (or a job) on the same tables refuses to start
        hold_writer_lock(s.data_dir, "tickcast up")
    except LockHeld as e:
        raise click.ClickException(str(e)) from None
    with QuietStderr(log_dir / "up.log", enabled=not verbose):
        _run(s, source, files, rate, symbols, jobs, log_dir, stop, term, components, verbose)


def _run(s: Settings, source: str, files: list[Path], rate: float, symbols: str, jobs: list[str], log_dir: Path,
         stop: threading.Event, term: Terminal, components: bool, verbose: bool) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    if not verbose:
        term.say(f"logs: Spark, JVM, TensorFlow and MLflow output goes to {log_dir}/ (--verbose shows it here)")
    source = _resolve_source(s, source, term)
    try:
        started_broker = kafka_broker._read_pid(s) is None
        term.say(kafka_broker.start(s).describe())
    except kafka_broker.BrokerError as e:
        raise click.ClickException(str(e)) from None
    children = Children(s, log_dir)
    spark = None
    served = None
    try:
        served = serve_metrics(s)
        if served is not None:
            term.say(f"metrics: {served.url} (Prometheus; the streams' rows, lag, freshness, models)")
        bases = [x.strip().upper() for x in symbols.split(",") if x.strip()]
        # The simulator goes on from the newest simulated close (a restart continues the chart).
        start_prices = sim_start_prices(s, bases) if source == "simulate" else None
        producer = children.start("producer", _producer_cmd(source, files, rate, symbols, start_prices))
        term.say(f"producer: {source} (pid {producer.pid}, log {log_dir / 'producer.log'})")
        if components:
            # Create (migrate) the MLflow store once, before the service's registry watcher, the
            # dashboard and the bootstrap's training open it at the same moment: SQLite migrations
            # racing each other leave it half-migrated ("table _alembic_tmp_... already exists").
            from tickcast import model_io  # deferred: heavy (mlflow)

            model_io.configure(s)
            for name, (cmd, host_attr, port_attr) in COMPONENTS.items():
                children.start(name, [sys.executable, "-m", "tickcast.cli", *cmd])
                term.say(f"{name}: {children.url(name, host_attr, port_attr)} (log {log_dir / (name + '.log')})")
        t0 = time.monotonic()
        stack = StackMeter(s, producer.pid, [p.pid for p in children.procs.values()])
        st = status.Status(source=source, log_dir=str(log_dir))
        last_count = 0.0
        # A replay's minutes are old by trade time: "a minute after the start" never comes, so no catching up.
        streams = {"started_s": None, "caught_up": source == "replay", "registry": None}

        def show(last: dict) -> None:
            nonlocal last_count
            if time.monotonic() - last_count > 10:
                st.rows = table_rows(s)
                st.prediction, _, st.scores = prediction_summary(s).partition(" | ")
                try:
                    st.data_loss = data_loss.describe(data_loss.lost_offsets(s))
                except Exception:  # the table being written: keep the last reading, never crash the panel
                    pass
                st.lifecycle = lifecycle_summary(s, children.procs.get("retrainer"))
                if "predict" in jobs:
                    st.serving = serving_summary(s, _registry(s, streams)) or st.serving
                if not streams["caught_up"] and streams["started_s"] is not None:
                    c = catch_up(s, streams["started_s"], last)
                    st.catching_up = c.describe()
                    streams["caught_up"] = not c.catching_up    # for good: alerts are as usual from then on
                last_count = time.monotonic()
            st.elapsed_s = time.monotonic() - t0
            st.queries = dict(last)
            st.stack = stack.describe()
            if components:
                st.urls = {n: children.url(n, h, p) for n, (_, h, p) in COMPONENTS.items()}
            if served is not None:
                st.urls = {**(st.urls or {}), "metrics": served.url}
            term.show(st)

        if source == "live" and s.backfill_lookback_hours > 0:
            # History first, so bars (and features) have the last hours from the first minute. Spark is
            # started here once and reused by the jobs; bars starts after the backfill (one writer).
            spark = session(s, app="tickcast-" + "-".join(JOBS))
            try:
                r, dt = rest_backfill(s, bases, s.backfill_lookback_hours, spark=spark, echo=term.say)
                term.say(f"backfill: {s.backfill_lookback_hours:g} h of 1m klines over REST: read {r['rows_read']}, "
                         f"inserted {r['inserted']} in {dt:.1f}s")
            except click.ClickException as e:
                term.say(f"backfill skipped: {e.message}", fg="yellow", bold=True)
        spark = spark or session(s, app="tickcast-" + "-".join(JOBS))
        spark.sparkContext.setLogLevel("WARN" if verbose else "ERROR")
        # Before the streams write bars (one writer per table); live trains on the backfilled klines only.
        if {"predict", "hotpath"} & set(jobs) and not stop.is_set():
            ensure_models(spark, s, bases, echo=term.say, allow_simulated=source != "live",
                          start_prices=start_prices)
            # After the first training (one trainer at a time), at low priority: predictions keep flowing.
            children.start("retrainer", [sys.executable, "-m", "tickcast.cli", "retrain"], nice=RETRAINER_NICE)
            term.say(f"retrainer: every {s.retrain_every} on the last {s.train_window} (nice {RETRAINER_NICE}, "
                     f"log {log_dir / 'retrainer.log'})")
        if not stop.is_set():
            streams["started_s"] = time.time()
            run(jobs, s, available_now=False, on_progress=show, stop_event=stop,
                log_level="WARN" if verbose else "ERROR", spark=spark)
    finally:
        term.close()
        term.say("stopping: producer, streams" + (", service, dashboard" if components else "")
                 + (", broker" if started_broker else ""))
        children.stop()
        if served is not None:
            served.close()
        if started_broker:
            kafka_broker.stop(s)
        term.say("stopped")
