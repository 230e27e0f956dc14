"""The one Delta I/O layer: table locations and plain delta-rs reads here; `follow` (the one
incremental reader: the service's watcher, the dashboard, the jobs' driver-side reads), `write`
(the one write path, which picks delta-rs or Spark per batch), `log` (appends read from the
commit JSON). `_checksum` is private to `write`."""
from __future__ import annotations

from tickcast.settings import Settings
from tickcast.tables import Table


def uri(table: Table, s: Settings) -> str:
    """The table's location as delta-rs names it."""
    return rs_uri(table.path(s))


def rs_uri(path: str) -> str:
    """A table path as delta-rs names it (`s3a://` is Hadoop's scheme; delta-rs says `s3://`)."""
    return "s3://" + path[len("s3a://"):] if path.startswith("s3a://") else path


def exists(table: Table, s: Settings) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(uri(table, s))


def read(table: Table, s: Settings, columns: list[str] | None = None, filters: list | None = None):
    """The table (selected columns, DNF filters) as a pyarrow Table; timestamps stay UTC."""
    from deltalake import DeltaTable

    return DeltaTable(uri(table, s)).to_pyarrow_table(columns=columns, filters=filters)


def to_ms(arr):
    """A pyarrow timestamp column -> int64 epoch milliseconds (numpy)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pc.cast(arr, pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)
