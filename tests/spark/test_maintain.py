"""Batch job `maintain`: OPTIMIZE + VACUUM keep every value, cut the files, and delta-rs still reads."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tickcast import tables

pytestmark = pytest.mark.spark


def _quarantine_rows(start: int, n: int) -> list[dict]:
    t = datetime(2024, 8, 9, tzinfo=timezone.utc)
    return [{"raw_value": f"junk {i}".encode(), "raw_key": b"BTCUSDT", "reason": "not_json", "source": "live",
             "kafka_topic": "ticks", "kafka_partition": i % 2, "kafka_offset": i, "kafka_timestamp": t,
             "ingest_time": t} for i in range(start, start + n)]


def _parquet_files(path: str) -> int:
    return sum(1 for _ in Path(path).rglob("*.parquet"))


@pytest.fixture
def lake(base_settings, tmp_path):
    return dataclasses.replace(base_settings, lake_uri=str(tmp_path / "delta"),
                               checkpoint_uri=str(tmp_path / "checkpoints"))


def test_maintain_compacts_vacuums_keeps_values_and_skips_absent_tables(spark, lake, capsys):
    from deltalake import DeltaTable

    from tickcast.lake.write import ensure_table
    from jobs.maintain import run

    path = ensure_table(spark, tables.QUARANTINE, lake)
    schema = tables.QUARANTINE.schema.spark_type()
    for k in range(6):                     # six small commits, like six micro-batches
        spark.createDataFrame(_quarantine_rows(k * 5, 5), schema).repartition(2) \
             .write.format("delta").mode("append").save(path)
    cols = ["kafka_partition", "kafka_offset", "reason", "raw_value"]
    before = sorted(tuple(r) for r in spark.read.format("delta").load(path).select(*cols).collect())
    files_before = _parquet_files(path)
    assert files_before >= 6

    report = run(spark, lake, vacuum_hours=0, allow_short_retention=True)

    by_name = {r["table"]: r for r in report}
    assert set(by_name) == set(tables.ALL)
    q = by_name["bronze.quarantine"]
    assert q["status"] == "maintained" and q["optimized"] is True
    assert q["files_after"] == 1 < q["files_before"]
    for name, r in by_name.items():
        if name != "bronze.quarantine":
            assert r["status"] == "absent", name            # never created: skipped, not created
            assert not Path(tables.ALL[name].path(lake)).exists()
    after = sorted(tuple(r) for r in spark.read.format("delta").load(path).select(*cols).collect())
    assert after == before and len(after) == 30
    assert _parquet_files(path) == 1 < files_before       # VACUUM (0 h) removed the compacted-away files
    rs = DeltaTable(path).to_pandas()                      # delta-rs, no JVM, still reads it
    assert sorted(zip(rs.kafka_partition, rs.kafka_offset)) == sorted((b[0], b[1]) for b in before)
    out = capsys.readouterr().out
    assert "bronze.quarantine: OPTIMIZE + VACUUM" in out and "silver.bars_1m: absent" in out
    # The safety check is back on after the run.
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled") == "true"


def test_vacuum_only_tables_are_not_optimized_and_short_retention_needs_consent(spark, lake):
    from tickcast.lake.write import ensure_table
    from jobs.maintain import run

    path = ensure_table(spark, tables.QUARANTINE, lake)
    schema = tables.QUARANTINE.schema.spark_type()
    for k in range(3):
        spark.createDataFrame(_quarantine_rows(k * 3, 3), schema).write.format("delta").mode("append").save(path)
    with pytest.raises(ValueError, match="safe retention"):
        run(spark, lake, vacuum_hours=1, names=["bronze.quarantine"])
    [r] = run(spark, lake, names=["bronze.quarantine"], vacuum_only={"bronze.quarantine"})
    assert r["optimized"] is False and r["files_after"] == r["files_before"] >= 3
    with pytest.raises(ValueError, match="unknown table"):
        run(spark, lake, names=["silver.nope"])


def test_main_wires_maintain_as_a_batch_job(lake, monkeypatch, capsys):
    from jobs import main as entry

    calls = []
    # Only the job's function is replaced: the wiring from `--job maintain` to it is the product's.
    monkeypatch.setattr("jobs.maintain.main", lambda argv, s: calls.append(argv) or 0)
    assert entry.main(["--job", "maintain", "--vacuum-hours", "200"]) == 0
    assert calls == [["--vacuum-hours", "200"]]
    with pytest.raises(SystemExit):
        entry.main(["--job", "maintain", "--job", "ingest"])      # a batch job runs alone
    with pytest.raises(SystemExit):
        entry.main(["--job", "ingest", "--vacuum-hours", "1"])    # streaming jobs take no extra options
