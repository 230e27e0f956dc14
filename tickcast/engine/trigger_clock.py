"""ADR 0001 (docs/adr/0001-ingest-trigger-phase.md): Start a query's processing-time micro-batches a fixed time after each trigger boundary.

Spark fires a processing-time trigger on multiples of its interval since the epoch: with the
1-second default, on whole seconds, which is exactly when minutes end. A minute's bars close on
the first trade after the minute (trade ids prove the minute complete), and that trade reaches
Kafka a few tens of milliseconds after the whole second, so the ingest batch that starts on the
second misses it and the next one, a second later, carries it. Starting ingest's batches at a
phase (0.4 s past each second by default) puts the first trades of most minutes in the first batch
after the minute: in `tickcast bench stack` it took the bar stage's p50 from 2.06 to 1.54 s.

Spark has no setting for the phase. Its `ProcessingTimeExecutor` waits for the next boundary with
`clock.waitTillTime(t)`; `shift` swaps that executor's clock for one that waits until `t + phase`
(the query's own clock, which stamps progress and `current_timestamp()`, stays the system clock).
That reaches into a private field of Spark's executor (pinned Spark version, checked by a test);
if anything in it fails, the query keeps Spark's own alignment and a warning says so.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("tickcast.trigger_phase")


def phased_target_ms(target_ms: int, phase_ms: int) -> int:
    """The time a phased clock waits for when Spark asks for `target_ms` (pure, for the tests)."""
    return int(target_ms) + int(phase_ms)


class PhasedClock:
    """An `org.apache.spark.util.Clock` (via py4j) that waits `phase_ms` past every target."""

    def __init__(self, phase_ms: int):
        self.phase_ms = int(phase_ms)

    def getTimeMillis(self) -> int:  # noqa: N802 (Java interface)
        return int(time.time() * 1000)

    def nanoTime(self) -> int:  # noqa: N802
        return time.monotonic_ns()

    def waitTillTime(self, target_ms: int) -> int:  # noqa: N802
        target = phased_target_ms(target_ms, self.phase_ms)
        while True:
            now = int(time.time() * 1000)
            if now >= target:
                return now
            time.sleep(min(target - now, 1000) / 1000.0)

    class Java:
        implements = ["org.apache.spark.util.Clock"]


def shift(query, phase_seconds: float, timeout_s: float = 60.0) -> bool:
    """Make `query`'s processing-time batches start `phase_seconds` after each trigger boundary.

    Returns True once the executor's clock is swapped; False (with a warning) when the query has
    no processing-time executor within `timeout_s` or Spark's internals differ.
    """
    if phase_seconds <= 0:
        return False
    try:
        execution = query._jsq.streamingQuery()
        deadline = time.monotonic() + timeout_s
        executor = execution.triggerExecutor()
        # The executor is built on the query's own thread once its sources are known.
        while executor is None and query.isActive and time.monotonic() < deadline:
            time.sleep(0.05)
            executor = execution.triggerExecutor()
        if executor is None:
            log.warning("%s: no trigger executor after %.0f s; batches keep Spark's alignment",
                        query.name, timeout_s)
            return False
        cls = executor.getClass()
        if cls.getSimpleName() != "ProcessingTimeExecutor":
            return False
        field = cls.getDeclaredField("clock")
        field.setAccessible(True)
        field.set(executor, PhasedClock(round(phase_seconds * 1000)))
        return True
    except Exception as e:  # noqa: BLE001 - any failure only costs the phase, never the query
        log.warning("%s: could not shift the trigger phase (%s); batches keep Spark's alignment",
                    getattr(query, "name", "?"), e)
        return False
