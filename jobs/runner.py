"""Run streaming jobs in one Spark driver: start, record progress, stop cleanly on a signal."""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Callable

from tickcast.settings import Settings

log = logging.getLogger("tickcast.runner")


def job_starters() -> dict[str, Callable]:
    """Job name -> start(spark, settings, available_now) returning a StreamingQuery."""
    from jobs import bars, features, ingest, outcomes, predict

    return {"ingest": ingest.start, "bars": bars.start, "features": features.start, "predict": predict.start,
            "outcomes": outcomes.start}


def run(names: list[str], s: Settings, available_now: bool = False, spark=None,
        progress_every: float = 10.0, on_progress: Callable[[dict], None] | None = None,
        stop_event: threading.Event | None = None, log_level: str | None = None) -> dict[str, dict]:
    """Run the named jobs until they finish (available-now) or a stop signal; return their last progress."""
    from jobs.progress import ProgressRecorder
    from tickcast.spark import session

    starters = job_starters()
    unknown = [n for n in names if n not in starters]
    if unknown:
        raise ValueError(f"unknown job(s): {', '.join(unknown)}; known: {', '.join(sorted(starters))}")
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
