"""The one SparkSession recipe: Delta, UTC, few shuffle partitions, the venv's Python for workers.

The Kafka connector and Delta jars sit in pyspark's own jars folder (scripts/setup.sh puts them
there, the k8s image bakes them in), so the builder and `spark-submit` need no package resolution.
"""
from __future__ import annotations

from tickcast import engine
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
        # 2 matches the 2 cores; 200 could not keep a 1 s trigger (docs/performance.md#spark-shuffle-partitions).
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.driver.memory": s.spark_driver_memory,
        "spark.pyspark.python": s.python,
        "spark.pyspark.driver.python": s.python,
        # Spark's default (HDFS-backed, in-memory) state store: the only state is features' last
        # minutes per symbol, a few KB. RocksDB's commit (flush, fsync, checkpoint copy) cost a live
        # features batch ~0.1-0.2 s more (measured: state commit p50 222 -> 103 ms, a bar's
        # features 1.21 -> 1.03 s). A checkpoint keeps the provider it was started with.
        "spark.sql.streaming.stateStore.providerClass":
            "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
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
        # Generated classes are cached by their code, 100 by default: fewer than the five jobs'
        # plans, Delta's stats and the state store use, so every batch recompiled some (JFR: Janino
        # was ~6% of the driver JVM at a live rate).
        "spark.sql.codegen.cache.maxEntries": "2000",
    }
    if s.spark_master.startswith("local"):
        # The embedded run listens on loopback only. Under a cluster manager (the Spark Operator's
        # spark-submit on Kubernetes) executors must reach the address spark-submit gave the driver.
        c["spark.driver.host"] = c["spark.driver.bindAddress"] = "127.0.0.1"
    # The UI's kill links stop a job (or the pipeline) with one request: off everywhere.
    c["spark.ui.killEnabled"] = "false"
    return c


def session(s: Settings, app: str = "tickcast", extra: dict[str, str] | None = None):
    """Create (or return the running) SparkSession for these settings."""
    from pyspark.sql import SparkSession

    s.pin_worker_python()
    if s.spark_master.startswith("local"):
        s.pin_spark_bind_address()     # the UI listens on loopback (0.0.0.0 unless SPARK_LOCAL_IP is set)
    builder = SparkSession.builder.appName(app)
    if s.spark_master:
        builder = builder.master(s.spark_master)
    for k, v in {**conf(s), **(extra or {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    engine.apply(spark)
    return spark
