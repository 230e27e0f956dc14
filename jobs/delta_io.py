"""Delta table helpers shared by the jobs: create by declared schema, idempotent appends."""
from __future__ import annotations

from tickcast.settings import Settings
from tickcast.tables import Table


def ensure_table(spark, table: Table, s: Settings) -> str:
    """Create the table at its path from its declared schema if it does not exist; return the path."""
    from delta.tables import DeltaTable

    path = table.path(s)
    b = DeltaTable.createIfNotExists(spark).location(path).addColumns(table.schema.spark_type())
    if table.partition_by:
        b = b.partitionedBy(*table.partition_by)
    b.execute()
    return path


def append_once(df, path: str, app_id: str, version: int) -> None:
    """Append unless this (app_id, version) was already committed: Delta's idempotent writes."""
    (df.write.format("delta").mode("append")
       .option("txnAppId", app_id).option("txnVersion", version).save(path))
