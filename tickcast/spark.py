"""The one SparkSession recipe: Delta, UTC, few shuffle partitions, the venv's Python for workers.

The Kafka connector and Delta jars sit in pyspark's own jars folder (scripts/setup.sh puts them
there, the k8s image bakes them in), so the builder and `spark-submit` need no package resolution.
"""
from __future__ import annotations

from tickcast.settings import Settings


def conf(s: Settings) -> dict[str, str]:
    c = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        # -XX:-DontCompileHugeMethods: whole-stage codegen of ingest's validation is one method of
        # ~11 KB bytecode, above HotSpot's 8 KB JIT limit, so it ran interpreted (measured: parse +
        # validate 3-4x faster with the flag).
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:+UseG1GC -XX:-DontCompileHugeMethods",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC -XX:-DontCompileHugeMethods",
        # MEASURED.md: 200 shuffle partitions cannot keep a 1 s trigger; 2 matches the 2 cores.
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.driver.memory": s.spark_driver_memory,
        "spark.pyspark.python": s.python,
        "spark.pyspark.driver.python": s.python,
        "spark.sql.streaming.stateStore.providerClass":
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        "spark.sql.warehouse.dir": str(s.data_dir / "spark-warehouse"),
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",
        "spark.sql.streaming.metricsEnabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Delta's default of 50 adds two 50-task stages to every micro-batch's snapshot (measured:
        # batch p50 4.2 s -> 2.6 s at 50 ticks/s with 2).
        "spark.databricks.delta.snapshotPartitions": "2",
        # MERGE sources here are cached micro-batches: deterministic, so no second copy is needed.
        "spark.databricks.delta.merge.materializeSource": "none",
        # The optional per-commit checksum file (the log is the source of truth without it): ~0.1 s
        # of every tiny live commit (measured 50-row ingest batches: median 0.81 -> 0.71 s).
        "spark.databricks.delta.writeChecksumFile.enabled": "false",
    }
    if s.spark_master.startswith("local"):
        # The embedded run listens on loopback only. Under a cluster manager (the Spark Operator's
        # spark-submit on Kubernetes) executors must reach the address spark-submit gave the driver.
        c["spark.driver.host"] = c["spark.driver.bindAddress"] = "127.0.0.1"
    return c


def session(s: Settings, app: str = "tickcast", extra: dict[str, str] | None = None):
    """Create (or return the running) SparkSession for these settings."""
    from pyspark.sql import SparkSession

    s.pin_worker_python()
    builder = SparkSession.builder.appName(app)
    if s.spark_master:
        builder = builder.master(s.spark_master)
    for k, v in {**conf(s), **(extra or {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
