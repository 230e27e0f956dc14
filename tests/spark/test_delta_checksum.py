"""delta-rs appends from the driver leave a version checksum Spark reads, with the right values."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from tickcast import tables

pytestmark = pytest.mark.spark


@pytest.fixture
def lake(base_settings, tmp_path):
    return dataclasses.replace(base_settings, lake_uri=str(tmp_path / "delta"),
                               checkpoint_uri=str(tmp_path / "checkpoints"))


def _rows(start: int, n: int):
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(tables.FEATURES.schema.spark_type())
    rows = []
    for i in range(start, start + n):
        r = {f.name: float(i) for f in schema}
        r.update(symbol="AAA", window_start=dt.datetime.fromtimestamp(60 * i, dt.timezone.utc), feature_version="v",
                 minutes_in_segment=i, warmup=False)
        rows.append(r)
    return pa.Table.from_pylist(rows, schema=schema)


def _log_action(path: str, version: int, kind: str) -> dict | None:
    for line in Path(path, "_delta_log", f"{version:020d}.json").read_text().splitlines():
        if line.strip() and kind in (a := json.loads(line)):
            return a[kind]
    return None


def _spark_state(spark, path: str) -> tuple[int, int, int]:
    """(version, live files, their bytes) from Spark's own log replay, not from any checksum."""
    from pyspark.sql import functions as F

    jvm = spark.sparkContext._jvm
    none = jvm.scala.Option.empty()
    snap = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).update(False, none, none)
    from pyspark.sql import DataFrame

    files = DataFrame(snap.allFiles().toDF(), spark)
    n, size = files.agg(F.count(F.lit(1)), F.sum("size")).first()
    return int(snap.version()), int(n), int(size or 0)


def test_each_delta_rs_append_writes_a_checksum_equal_to_sparks_state(spark, lake):
    from delta.tables import DeltaTable

    from tickcast.lake.write import ensure_table, rs_append

    path = ensure_table(spark, tables.FEATURES, lake)
    logdir = Path(path, "_delta_log")
    written = {}

    def append(rows, version):
        rs_append(rows, path, "app", version)
        on_disk = sorted(int(p.stem) for p in logdir.glob("[0-9]*.crc"))   # not Hadoop's hidden .*.json.crc
        assert len(on_disk) == 1, on_disk       # the newest only: older ones would lengthen every listing
        written[on_disk[0]] = json.loads((logdir / f"{on_disk[0]:020d}.crc").read_text())
        assert _spark_state(spark, path)[1:] == (written[on_disk[0]]["numFiles"],
                                                 written[on_disk[0]]["tableSizeBytes"])

    append(_rows(0, 3), 0)
    append(_rows(3, 2), 1)
    # Other writers in between: a Spark MERGE (no metadata change) and a property change.
    src = spark.createDataFrame(_rows(5, 2).to_pandas(), tables.FEATURES.schema.spark_type())
    DeltaTable.forPath(spark, path).alias("t").merge(
        src.alias("s"), "t.symbol = s.symbol AND t.window_start = s.window_start").whenNotMatchedInsertAll().execute()
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('tickcast.test' = 'yes')")
    append(_rows(7, 4), 2)

    assert sorted(written) == [1, 2, 5], written.keys()     # the three delta-rs commits, not Spark's
    created = _log_action(path, 0, "metaData")
    for v, crc in written.items():
        assert crc["protocol"] == _log_action(path, 0, "protocol")
        assert crc["metadata"]["schemaString"] == created["schemaString"]
        assert crc["metadata"]["id"] == created["id"]
        # carried over the ALTER's metaData action (version 4) into version 5's checksum, not before
        assert (crc["metadata"]["configuration"].get("tickcast.test") == "yes") == (v == 5)
        assert crc["numMetadata"] == crc["numProtocol"] == 1
    version, n_files, size = _spark_state(spark, path)
    crc = json.loads((logdir / f"{version:020d}.crc").read_text())
    assert (crc["numFiles"], crc["tableSizeBytes"]) == (n_files, size)
    assert n_files >= 4
    assert spark.read.format("delta").load(path).count() == 11


VERIFY = {
    # Delta's own checks, on for this test: a checksum that disagrees with the state is an error,
    # Spark's commits write theirs incrementally from the previous one (ours included) and verify
    # each against a full state reconstruction before and after the commit.
    "spark.databricks.delta.checksum.mismatch.fatal": "true",
    "spark.databricks.delta.writeChecksumFile.enabled": "true",
    "spark.databricks.delta.incremental.commit.verify": "true",
    "spark.databricks.delta.retentionDurationCheck.enabled": "false",
}


def test_checksums_hold_under_deltas_own_verification_through_both_engines_merge_optimize_vacuum(spark, lake):
    from delta.tables import DeltaTable

    from tickcast.lake.write import ensure_table, rs_append

    old = {k: spark.conf.get(k, None) for k in VERIFY}
    for k, v in VERIFY.items():
        spark.conf.set(k, v)
    try:
        path = ensure_table(spark, tables.FEATURES, lake)
        jvm = spark.sparkContext._jvm
        none = jvm.scala.Option.empty()

        def verify():
            snap = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).update(
                False, none, none)
            empty = getattr(getattr(jvm.scala.collection.immutable, "Map$"), "MODULE$").empty()
            assert snap.validateChecksum(empty) is True
            return snap.version()

        def spark_rows(a, n):
            return spark.createDataFrame(_rows(a, n).to_pandas(), tables.FEATURES.schema.spark_type())

        rs_append(_rows(0, 3), path, "app", 0)
        rs_append(_rows(3, 2), path, "app", 1)
        verify()
        spark_rows(5, 2).write.format("delta").mode("append").save(path)        # Spark append
        rs_append(_rows(7, 2), path, "app", 2)
        verify()
        DeltaTable.forPath(spark, path).alias("t").merge(
            spark_rows(8, 4).alias("s"), "t.symbol = s.symbol AND t.window_start = s.window_start"
        ).whenNotMatchedInsertAll().execute()                                       # MERGE (inserts 9..11)
        rs_append(_rows(12, 1), path, "app", 3)
        verify()
        spark.sql(f"OPTIMIZE delta.`{path}`")
        rs_append(_rows(13, 2), path, "app", 4)
        verify()
        spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS")
        rs_append(_rows(15, 1), path, "app", 5)
        v = verify()
        # And a checkpoint, which Delta writes only from a state that matches its checksum.
        jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).checkpoint()
        assert v == _spark_state(spark, path)[0]
        assert spark.read.format("delta").load(path).count() == 16
        import deltalake

        assert deltalake.DeltaTable(path).to_pyarrow_table().num_rows == 16
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)
