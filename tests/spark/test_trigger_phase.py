"""The ingest trigger phase: a real query's processing-time batches start at the phase, not on the boundary."""
import time

from tickcast.engine import trigger_clock as trigger_phase


def test_phased_clock_waits_past_the_target():
    clock = trigger_phase.PhasedClock(150)
    t0 = clock.getTimeMillis()
    woke = clock.waitTillTime(t0 + 50)
    assert t0 + 200 <= woke < t0 + 1000
    assert clock.waitTillTime(t0) >= t0 + 150 and trigger_phase.phased_target_ms(1000, 400) == 1400


def test_a_shifted_query_starts_its_batches_at_the_phase(spark):
    seen = []
    q = (spark.readStream.format("rate").option("rowsPerSecond", 5).load()
         .writeStream.foreachBatch(lambda df, bid: seen.append(bid))
         .trigger(processingTime="1 second").start())
    try:
        assert trigger_phase.shift(q, 0.4)
        deadline = time.monotonic() + 60
        while len(q.recentProgress) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        progress = q.recentProgress
    finally:
        q.stop()
    # Spark stamps each batch with its trigger time; after the swap, that is 400 ms past a second
    # (plus the few ms a batch takes to start), where Spark alone puts it on the second.
    starts_ms = [int(p["timestamp"][20:23]) for p in progress[-4:]]
    assert len(progress) >= 6, progress
    assert all(400 <= ms < 600 for ms in starts_ms), starts_ms


def test_no_phase_leaves_spark_alone(spark):
    q = (spark.readStream.format("rate").option("rowsPerSecond", 1).load()
         .writeStream.foreachBatch(lambda df, bid: None).trigger(processingTime="1 second").start())
    try:
        assert not trigger_phase.shift(q, 0.0)
    finally:
        q.stop()
