"""Run streaming jobs in one Spark driver: start, record progress, stop cleanly on a signal."""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Callable

from tickcast.settings import Settings

log = logging.getLogger("tickcast.runner")


JOBS = ("ingest", "bars", "features", "predict", "outcomes")


def job_starters(names=JOBS) -> dict[str, Callable]:
    """Job name -> start(spark, settings, available_now) returning a StreamingQuery (only the named
    jobs' modules are imported: ingest alone needs neither TensorFlow nor the feature code)."""
    import importlib

    return {n: importlib.import_module(f"jobs.{n}").start for n in names if n in JOBS}


def run(names: list[str], s: Settings, available_now: bool = False, spark=None,
        progress_every: float = 10.0, on_progress: Callable[[dict], None] | None = None,
        stop_event: threading.Event | None = None, log_level: str | None = None) -> dict[str, dict]:
    """Run the named jobs until they finish (available-now) or a stop signal; return their last progress."""
    from jobs.progress import ProgressRecorder
    from tickcast.lock import hold_writer_lock
    from tickcast.spark import session

    unknown = [n for n in names if n not in JOBS]
    if unknown:
        raise ValueError(f"unknown job(s): {', '.join(unknown)}; known: {', '.join(sorted(JOBS))}")
    starters = job_starters(names)
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
    queries = [starters[n](spark, s, available_now) for n in names]
    last_flush = time.monotonic()
    try:
        while not stop.is_set() and any(q.isActive for q in queries):
            for q in queries:
                if q.exception() is not None:
                    raise RuntimeError(f"query {q.name} failed: {q.exception()}")
            time.sleep(0.5)
            recorder.collect(queries)
            if on_progress:
                on_progress(recorder.last)
            if time.monotonic() - last_flush >= progress_every:
                recorder.flush()
                last_flush = time.monotonic()
        for q in queries:
            if q.exception() is not None:
                raise RuntimeError(f"query {q.name} failed: {q.exception()}")
    finally:
        # Let a running micro-batch finish before stopping: stop() interrupts it mid-write (safe,
        # since the batch is re-run idempotently, but noisy).
        deadline = time.monotonic() + 20
        for q in queries:
            while q.isActive and q.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.1)
            if q.isActive:
                q.stop()
        recorder.collect(queries)
        recorder.flush()
    return recorder.last
