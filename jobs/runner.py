"""Run streaming jobs in one Spark driver: start, record progress, stop cleanly on a signal."""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Callable

from tickcast.lock import hold_writer_lock
from tickcast.settings import Settings
from tickcast.spark import session

log = logging.getLogger("tickcast.runner")


JOBS = ("ingest", "bars", "features", "predict", "outcomes", "hotpath")


def job_starters(names=JOBS) -> dict[str, Callable]:
    """Job name -> start(spark, settings, available_now) returning a StreamingQuery (only the named
    jobs' modules are imported: ingest alone needs neither TensorFlow nor the feature code)."""
    import importlib

    return {n: importlib.import_module(f"jobs.{n}").start for n in names if n in JOBS}


# The jobs whose tables `hotpath` writes (one writer per table): never in one run with it.
HOTPATH_REPLACES = ("ingest", "bars", "features", "predict")
GATE_CHECK_SECONDS = 5.0     # how often a held-back job's gate is asked again
SAY_EVERY_SECONDS = 30.0     # how often a held-back job says what it waits for


class Job:
    """One streaming job under the runner: started once its gate lets it.

    A job module may define `waiting_for(settings)`, returning a function that says what the job
    waits for before it can start (None: ready), such as predict's model. The runner asks it
    instead of letting a batch wait: a query not started takes no batch, so nothing is committed
    unprocessed. A gated query that fails while its gate is closed again (its model removed) goes
    back to waiting: its failed batch committed nothing and runs again once the query restarts.
    """

    def __init__(self, name: str, start: Callable, gate: Callable[[], str | None] | None = None):
        self.name, self.start, self.gate = name, start, gate
        self.query = None
        self._checked = self._said = float("-inf")

    def try_start(self, spark, s: Settings, available_now: bool) -> None:
        """Start the query unless its gate is closed (asked every GATE_CHECK_SECONDS)."""
        if self.gate is not None:
            now = time.monotonic()
            if now - self._checked < GATE_CHECK_SECONDS:
                return
            self._checked = now
            why = self.gate()
            if why is not None:
                if now - self._said >= SAY_EVERY_SECONDS:
                    log.warning("%s: waiting for %s", self.name, why)
                    print(f"{self.name}: waiting for {why}", flush=True)
                    self._said = now
                return
        self.query = self.start(spark, s, available_now)

    def check(self) -> None:
        """Raise if the query failed, unless it failed because its gate closed (then wait again)."""
        q = self.query
        if q is None or q.exception() is None:
            return
        if self.gate is not None and self.gate() is not None:
            log.warning("%s: stopped, its gate closed (%s); waiting", self.name, q.exception())
            self.query, self._checked = None, float("-inf")
            return
        raise RuntimeError(f"query {q.name} failed: {q.exception()}")

    @property
    def running(self) -> bool:
        """Still to do: not started yet, active, or failed and not `check`ed yet."""
        return self.query is None or self.query.isActive or self.query.exception() is not None


def jobs_of(names, s: Settings, starters: dict[str, Callable] | None = None) -> list[Job]:
    """The named jobs with their gates; `starters` replaces a job's start function."""
    import importlib

    out = []
    for n in names:
        module = importlib.import_module(f"jobs.{n}")
        gate = getattr(module, "waiting_for", None)
        out.append(Job(n, (starters or {}).get(n, module.start), gate(s) if gate else None))
    return out


def run(names: list[str], s: Settings, available_now: bool = False, spark=None,
        progress_every: float = 10.0, on_progress: Callable[[dict], None] | None = None,
        stop_event: threading.Event | None = None, log_level: str | None = None,
        starters: dict[str, Callable] | None = None) -> dict[str, dict]:
    """Run the named jobs until they finish (available-now) or a stop signal; return their last progress.

    `starters`: job name -> start(spark, settings, available_now) to use instead of the job's own
    (a caller that keeps a handle on the sink it passes).
    """
    from jobs.progress import ProgressRecorder  # deferred: heavy (imports numpy)

    unknown = [n for n in names if n not in JOBS]
    if unknown:
        raise ValueError(f"unknown job(s): {', '.join(unknown)}; known: {', '.join(sorted(JOBS))}")
    if "hotpath" in names and (both := [n for n in names if n in HOTPATH_REPLACES]):
        raise ValueError(f"job hotpath writes what {', '.join(both)} write(s): run one or the other")
    jobs = jobs_of(names, s, starters)
    # One writer per data directory: a second `up`, or a job beside it, refuses here (LockHeld names
    # the holder and the lock file); re-entrant in one process, and a job `up` started is let in.
    hold_writer_lock(s.data_dir, "tickcast job " + ",".join(names))
    spark = spark or session(s, app="tickcast-" + "-".join(names))
    if log_level:
        spark.sparkContext.setLogLevel(log_level)
    stop = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    recorder = ProgressRecorder(spark, s)

    def started():
        return [j.query for j in jobs if j.query is not None]

    for j in jobs:
        j.try_start(spark, s, available_now)
    last_flush = time.monotonic()
    try:
        while not stop.is_set():
            for j in jobs:
                j.check()          # first: a gated query that failed is waiting again, not done
                if j.query is None:
                    j.try_start(spark, s, available_now)
            if not any(j.running for j in jobs):
                break
            time.sleep(0.5)
            recorder.collect(started())
            if on_progress:
                on_progress(recorder.last)
            if time.monotonic() - last_flush >= progress_every:
                recorder.flush()
                last_flush = time.monotonic()
        for j in jobs:
            j.check()
    finally:
        # Let a running micro-batch finish before stopping: stop() interrupts it mid-write (safe,
        # since the batch is re-run idempotently, but noisy).
        deadline = time.monotonic() + 20
        for q in started():
            while q.isActive and q.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.1)
            if q.isActive:
                q.stop()
        recorder.collect(started())
        recorder.flush()
    return recorder.last
