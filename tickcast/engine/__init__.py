"""Engine workarounds: where tickcast patches or works around Spark, Delta, py4j or CPython, one
module per decision record in docs/adr/ (what it buys, what it costs, when to remove it).

| ADR | module | applied |
|---|---|---|
| 0001 | `trigger_clock` | per query, by `jobs.delta_io.start_sink` (ingest's phase) |
| 0002 | `zipimport_cache` | in the Python workers, by the UDFs that run there (features, predict, outcomes) |
| 0003 | `py4j_names` | `apply`, where the session is built (`tickcast.spark.session`) |
| 0004, 0005, 0013 | `tickcast.lake` (`_checksum`, `write`, `log`) | by the one Delta I/O layer |
| 0006 | `progress_json` | by the progress recorder and the benchmarks |
| 0007 | `arrow_frames` | by every job that builds a small frame in the driver |
| 0008 | `columns` | by bars, ingest and predict's scorer |
| 0011 | `tickcast.spark.conf` | where the session is built |

Each has a test in tests/unit/test_engine.py or tests/spark/test_engine.py that fails when its
removal condition holds (a version moved, or the engine behaviour it exists for is gone).
No module here imports pyspark at import time.
"""
from __future__ import annotations


def apply(spark) -> None:
    """The session-wide workarounds, applied to a session just built (`tickcast.spark.session`)."""
    from tickcast.engine import py4j_names

    py4j_names.pin_jvm_names(spark.sparkContext._jvm)
