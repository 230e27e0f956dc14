"""The one write path into the Delta tables: create by declared schema, idempotent appends by the
engine that suits the batch (delta-rs from the driver for live-sized batches, Spark's distributed
writer for replays and backfills)."""
from __future__ import annotations

from tickcast.lake import _checksum
from tickcast.lake.follow import table as rs_table
from tickcast.settings import Settings
from tickcast.tables import Table

# Table properties given when a table is created (an existing table keeps its own).
PROPERTIES: dict[str, dict[str, str]] = {
    "bronze.ticks": {
        # File statistics only for what readers filter on (the MERGE's literal key bounds, trade
        # time); Delta's default indexes the first 32 columns, decimals included, on every append.
        "delta.dataSkippingStatsColumns": "symbol,event_kind,id,trade_time",
        # A commit a second. A checkpoint (written by the committing ingest batch) and the reload
        # of the table's state from it slow the next two ingest batches by ~1.5-2 s each and the
        # bars batches beside them (docs/adr/0011-spark-settings-for-a-2-core-machine.md). Every
        # 1000th commit: once in ~17 minutes. New readers replay at most 1000 small commits.
        "delta.checkpointInterval": "1000",
    },
}


def ensure_table(spark, table: Table, s: Settings) -> str:
    """Create the table at its path from its declared schema if it does not exist; return the path."""
    from delta.tables import DeltaTable

    path = table.path(s)
    b = DeltaTable.createIfNotExists(spark).location(path).addColumns(table.schema.table_type())
    if table.partition_by:
        b = b.partitionedBy(*table.partition_by)
    for k, v in PROPERTIES.get(table.name, {}).items():
        b = b.property(k, v)
    b.execute()
    return path


# A batch of up to this many rows is appended by delta-rs from the driver instead of Spark's Delta
# writer: a Spark append of a few rows costs a write job, a snapshot update and the commit on the
# JVM, ~15 times delta-rs's (docs/adr/0005-driver-side-delta-rs-appends.md). Bigger batches
# (replays, backfills) stay with Spark's distributed writer.
RS_MAX_ROWS = 100_000


def append_once(df, path: str, app_id: str, version: int, rows: int | None = None) -> str:
    """Append `df` to the Delta table at `path` unless this (app_id, version) was already committed.

    Returns "delta-rs", "spark" or "skipped". Delta's idempotent writes (the `txn` action), which
    Spark's txnAppId check and `rs_append` read alike. `rows`, when the caller knows the count,
    picks the writer without collecting first. `df` may be a pyarrow Table the driver holds
    already: delta-rs appends it as it is.
    """
    import pyarrow as pa

    if isinstance(df, pa.Table):
        return rs_append(df, path, app_id, version)
    arrow = None
    if rows is None or rows <= RS_MAX_ROWS:
        arrow = df.limit(RS_MAX_ROWS + 1).toArrow()
        if arrow.num_rows > RS_MAX_ROWS:
            arrow = None
    if arrow is not None:
        return rs_append(arrow, path, app_id, version)
    (df.write.format("delta").mode("append")
     .option("txnAppId", app_id).option("txnVersion", version)
     .save(path))
    return "spark"


def rs_append(data, path: str, app_id: str | None = None, version: int | None = None) -> str:
    """Append an Arrow table with delta-rs, cast to the table's schema; once per (app_id, version).

    The check and the commit are not one atomic step: safe because every table has one writer
    (CONTRACTS). On S3, delta-rs commits by rename, which needs `AWS_S3_ALLOW_UNSAFE_RENAME`
    (set in k8s/base/settings.yaml) for the same reason.
    """
    import pyarrow as pa
    from deltalake import CommitProperties, Transaction, write_deltalake

    dt = rs_table(path)
    if app_id is not None:
        done = dt.transaction_version(app_id)
        if done is not None and done >= version:
            return "skipped"
    target = pa.schema(dt.schema().to_arrow())
    data = data.select(target.names).cast(target)
    props = CommitProperties(app_transactions=[Transaction(app_id, version)]) if app_id is not None else None
    write_deltalake(dt, data, mode="append", commit_properties=props)
    # So that Spark readers of the new version need no job to rebuild its protocol and metadata.
    _checksum.write_after_append(path, rs_table(path))
    return "delta-rs"


def append_small(data, uri: str, attempts: int = 5) -> str:
    """Append a few rows (an Arrow table) with delta-rs, creating the table from their schema on first use.

    For the small tables written outside the streaming jobs (ops.model_events, gold.backtest). A commit
    that lost a race with another appender (two first commits, or the same log entry) is retried on the
    log as it then is; on object stores a commit is a conditional put, so no appender overwrites another's.
    """
    import time
    from pathlib import Path

    from deltalake import write_deltalake

    options = {"conditional_put": "etag"} if uri.startswith("s3://") else None
    if "://" not in uri:
        Path(uri).mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            write_deltalake(uri, data, mode="append", storage_options=options)
            return uri
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return uri
