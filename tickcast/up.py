"""`tickcast up`: the whole local pipeline in one command; Ctrl-C stops everything cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from tickcast import data_loss, kafka_broker
from tickcast.lock import LockHeld, hold_writer_lock
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

    def __init__(self, s: Settings, producer_pid: int, others: list[int] = ()):
        import psutil

        self.psutil = psutil
        self.pids = [psutil.Process().pid, producer_pid, *[p for p in others if p != producer_pid]]
        bpid = kafka_broker._read_pid(s)
        if bpid:
            self.pids.append(bpid)
        self._last = (time.monotonic(), self._cpu())

    def _procs(self):
        seen: dict[int, object] = {}     # by pid: `up`'s own children are also in its recursive children
        for pid in self.pids:
            try:
                p = self.psutil.Process(pid)
                for q in (p, *p.children(recursive=True)):
                    seen.setdefault(q.pid, q)
            except self.psutil.NoSuchProcess:
                pass
        return list(seen.values())

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


# Components started beside the streams as child processes, through their own CLI commands (the core
# never imports them): name -> (command, URL setting attributes).
COMPONENTS = {"service": (["serve"], "serve_host", "serve_port"),
              "dashboard": (["dashboard"], "dashboard_host", "dashboard_port")}


def _die_with_parent() -> None:
    """Children get SIGTERM if `up` itself dies without cleaning up (kill -9): Linux prctl(PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the finally block below still stops them
        pass


class Children:
    """The child processes `up` started: each in its own session, with its log under the data directory."""

    def __init__(self, s: Settings, log_dir: Path):
        self.s, self.log_dir = s, log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.s.child_env(), start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        self.procs[name] = proc
        return proc

    def url(self, name: str, host_attr: str, port_attr: str) -> str:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            return f"not running (exit {proc.returncode}; see {self.log_dir / (name + '.log')})"
        host = getattr(self.s, host_attr)
        return f"http://{'[' + host + ']' if ':' in host else host}:{getattr(self.s, port_attr)}/"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT to the producer (it flushes), SIGTERM to the others; SIGKILL whatever outlives `timeout`."""
        for name, proc in self.procs.items():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT if name == "producer" else signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


class Terminal:
    """Where `up` talks: a live panel on a terminal, a plain line every `every` seconds otherwise.

    Writes never raise: when stdout is a closed pipe (`up | tee log`, then Ctrl-C) the run must still
    stop every child it started, so a broken pipe only sets `broken` and asks the run to stop.
    """

    def __init__(self, every: float, stop: threading.Event):
        self.every, self.stop = every, stop
        self.tty = sys.stdout.isatty()
        self.broken = False
        self.live = None
        self._last_plain = 0.0

    def say(self, text: str, **style) -> None:
        if self.broken:
            return
        try:
            if self.live is not None:
                self.live.console.print(text, style="bold " + style["fg"] if "fg" in style else None,
                                        highlight=False, markup=False)
            else:
                click.secho(text, **style)
        except (BrokenPipeError, OSError):
            self._broke()

    def show(self, st) -> None:
        from tickcast import status

        if self.broken:
            return
        try:
            if self.tty:
                if self.live is None:
                    from rich.live import Live

                    self.live = Live(status.panel(st), auto_refresh=False, transient=False)
                    self.live.start()
                self.live.update(status.panel(st), refresh=True)
            elif time.monotonic() - self._last_plain >= self.every:
                self._last_plain = time.monotonic()
                click.echo(status.plain_line(st))
                sys.stdout.flush()
        except (BrokenPipeError, OSError):
            self._broke()

    def close(self) -> None:
        if self.live is not None:
            try:
                self.live.stop()
            except (BrokenPipeError, OSError):
                self._broke()
            self.live = None

    def _broke(self) -> None:
        self.broken = True
        self.stop.set()
        try:  # later writes (and the interpreter's final flush) go nowhere instead of raising
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except OSError:
            pass


class QuietStderr:
    """Send this process's stderr (fd 2: Spark's JVM, TensorFlow, MLflow and Python warnings) to a log
    file, and give it back on exit, so errors raised after the run still reach the terminal."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled, self.saved = path, enabled, None

    def __enter__(self):
        if self.enabled:
            sys.stderr.flush()
            self.saved = os.dup(2)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 2)
            os.close(fd)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            sys.stderr.flush()
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self.saved = None


def _resolve_source(s: Settings, source: str, term: Terminal) -> str:
    if source != "auto":
        return source
    from producers.live import rest_reachable

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
    from jobs.runner import run
    from tickcast import status

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
    try:
        producer = children.start("producer", _producer_cmd(source, files, rate, symbols))
        term.say(f"producer: {source} (pid {producer.pid}, log {log_dir / 'producer.log'})")
        if components:
            # Create (migrate) the MLflow store once, before the service's registry watcher, the
            # dashboard and the bootstrap's training open it at the same moment: SQLite migrations
            # racing each other leave it half-migrated ("table _alembic_tmp_... already exists").
            from tickcast import model_io

            model_io.configure(s)
            for name, (cmd, host_attr, port_attr) in COMPONENTS.items():
                children.start(name, [sys.executable, "-m", "tickcast.cli", *cmd])
                term.say(f"{name}: {children.url(name, host_attr, port_attr)} (log {log_dir / (name + '.log')})")
        t0 = time.monotonic()
        stack = StackMeter(s, producer.pid, [p.pid for p in children.procs.values()])
        st = status.Status(source=source, log_dir=str(log_dir))
        last_count = 0.0

        def show(last: dict) -> None:
            nonlocal last_count
            if time.monotonic() - last_count > 10:
                st.rows = table_rows(s)
                st.prediction, _, st.scores = prediction_summary(s).partition(" | ")
                try:
                    st.data_loss = data_loss.describe(data_loss.lost_offsets(s))
                except Exception:  # the table being written: keep the last reading, never crash the panel
                    pass
                last_count = time.monotonic()
            st.elapsed_s = time.monotonic() - t0
            st.queries = dict(last)
            st.stack = stack.describe()
            if components:
                st.urls = {n: children.url(n, h, p) for n, (_, h, p) in COMPONENTS.items()}
            term.show(st)

        if source == "live" and s.backfill_lookback_hours > 0:
            # History first, so bars (and features) have the last hours from the first minute. Spark is
            # started here once and reused by the jobs; bars starts after the backfill (one writer).
            from tickcast.cli import rest_backfill
            from tickcast.spark import session

            spark = session(s, app="tickcast-" + "-".join(JOBS))
            try:
                r, dt = rest_backfill(s, [x.strip().upper() for x in symbols.split(",") if x.strip()],
                                      s.backfill_lookback_hours, spark=spark, echo=term.say)
                term.say(f"backfill: {s.backfill_lookback_hours:g} h of 1m klines over REST: read {r['rows_read']}, "
                         f"inserted {r['inserted']} in {dt:.1f}s")
            except click.ClickException as e:
                term.say(f"backfill skipped: {e.message}", fg="yellow", bold=True)
        from tickcast.bootstrap import ensure_models
        from tickcast.spark import session

        spark = spark or session(s, app="tickcast-" + "-".join(JOBS))
        spark.sparkContext.setLogLevel("WARN" if verbose else "ERROR")
        # Before the streams write bars (one writer per table); live trains on the backfilled klines only.
        if "predict" in jobs and not stop.is_set():
            ensure_models(spark, s, [x.strip().upper() for x in symbols.split(",") if x.strip()], echo=term.say,
                          allow_simulated=source != "live")
        if not stop.is_set():
            run(jobs, s, available_now=False, on_progress=show, stop_event=stop,
                log_level="WARN" if verbose else "ERROR", spark=spark)
    finally:
        term.close()
        term.say("stopping: producer, streams" + (", service, dashboard" if components else "")
                 + (", broker" if started_broker else ""))
        children.stop()
        if started_broker:
            kafka_broker.stop(s)
        term.say("stopped")
