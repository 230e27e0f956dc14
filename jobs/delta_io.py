"""Delta table helpers shared by the jobs: create by declared schema, idempotent appends."""
from __future__ import annotations

from jobs import delta_checksum, trigger_phase
from tickcast import lake, metrics, tables
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
        # bars batches beside them (measured in a Spark event log: 2.1 s and 2.5 s ingest batches,
        # a bar 1 s late). Every 10th commit (the default) made that one batch in ten; every 100th
        # still put ~5 s of it in every 100, so about one minute in twenty closed during it. Every
        # 1000th: once in ~17 minutes. New readers replay at most 1000 small commits.
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
# writer. A Spark append of a few rows cost 0.62 s median on this machine (a write job, a snapshot
# update and the commit, all on the JVM), collecting them and committing with delta-rs 0.04 s
# (20 appends of 6 rows each, same session): most of a live features or predict batch, and each of
# the four queries on the bar -> prediction path pays it once or more per minute. Bigger batches
# (replays, backfills) stay with Spark's distributed writer.
RS_MAX_ROWS = 100_000
_rs_tables: dict = {}     # uri -> deltalake.DeltaTable, brought up to date before each write


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


# ---- the chaos test's aimed kills (TICKCAST_TEST_KILL_AT; empty, so inert, outside tests) ----------
_kill_at = ""


def arm_kill_point(s: Settings) -> None:
    global _kill_at
    _kill_at = s.test_kill_at


def kill_point(point: str, after_seconds: float = 0.0) -> None:
    """SIGKILL this process's group at `point` when the test setting aims there: at once, or
    `after_seconds` later from a timer (to land inside a JVM operation such as a MERGE)."""
    if _kill_at != point:
        return
    import os
    import signal
    import sys

    def die():
        print(f"TICKCAST_TEST_KILL_AT={point}: killing process group {os.getpgrp()}", file=sys.stderr, flush=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    if after_seconds <= 0:
        die()
    import threading

    threading.Timer(after_seconds, die).start()


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
    if _kill_at == "mid-append":
        # A crash between writing the data files and committing them: the files are there, the
        # log does not name them (what a kill inside write_deltalake leaves), then the process dies.
        import uuid

        import pyarrow.parquet as pq

        pq.write_table(data, f"{_local_path(path)}/part-00000-{uuid.uuid4()}-c000.snappy.parquet")
        kill_point("mid-append")
    write_deltalake(dt, data, mode="append", commit_properties=props)
    # So that Spark readers of the new version need no job to rebuild its protocol and metadata.
    delta_checksum.write_after_append(path, rs_table(path))
    return "delta-rs"


class QuerySink:
    """A foreachBatch sink that learns its query's id once the query has started.

    The id is kept in the checkpoint: the same across restarts, new when a checkpoint is started
    afresh. An idempotent append keyed by it (`app_id`) and the batch id is skipped on a re-run
    batch, yet a new checkpoint (whose batch ids start at 0 again) writes.
    """

    def __init__(self):
        import threading

        self._query_id: str | None = None
        self._bound = threading.Event()

    def bind(self, query_id: str) -> None:
        self._query_id = query_id
        self._bound.set()

    def app_id(self, name: str) -> str:
        # The first batch can start before start() has returned to bind the id.
        if not self._bound.wait(120):
            raise RuntimeError(f"{name}: the streaming query's id never reached its sink")
        return f"{name}-{self._query_id}"


class InsertOnce:
    """Insert a batch's rows into a table unique on its key, once, as cheaply as that allows.

    The key starts with a group column (the symbol). A batch whose rows are, group by group, all
    newer (by `time_col`) than the group's newest row in the table cannot hit an existing key: it
    is appended idempotently (txnAppId/txnVersion, keyed by the query's id and the batch id, so a
    re-run batch finds itself committed). Any other batch (the first after a crash, or a stream
    replayed over a table that has its rows) goes through an insert-only MERGE on the key. A live
    stream's batches take the append: a MERGE joins the batch with the table first, which cost a
    live bars, features or predict batch ~1-1.5 s on this machine. Newest per group, not per
    table: one symbol's minute often closes a batch after another's (its next trade came later),
    and against the table's newest row that second batch went through the MERGE at every stage.
    """

    def __init__(self, table: Table, s: Settings, key: tuple[str, ...], time_col: str = "window_start"):
        self.table, self.s, self.key, self.time_col = table, s, key, time_col
        self.group_col = key[0]
        self.newest: dict | None = None      # group -> epoch ms of its newest row in the table
        self.version: int | None = None      # the table's version after this writer's last write

    def appends(self, spans: dict, spark) -> bool:
        """Whether rows with these spans take the idempotent append (else the MERGE)."""
        from pyspark.sql import functions as F

        path = self.table.path(self.s)
        if self.newest is not None and self.version is not None and rs_table(path).version() != self.version:
            # Another writer committed since (a `backfill` beside `bars`, a second job): the newest
            # minutes it added must not be appended again, so read them anew (~2 ms when unchanged).
            self.newest = None
        if self.newest is None:
            g = self.group_col
            self.newest = {r[g]: int(r["ms"]) for r in spark.read.format("delta").load(path).groupBy(g)
                           .agg(F.max(F.unix_millis(self.time_col)).alias("ms")).collect() if r["ms"] is not None}
        return appendable(spans, self.newest)

    def __call__(self, df, spans: dict, app_id: str | None, batch_id: int | None, spark=None) -> str:
        """Insert `df`, whose `time_col` spans [lo_ms, hi_ms] per group (`spans`: group -> (lo_ms,
        hi_ms)); returns "append" or "merge".

        `df` is a Spark DataFrame, or a pyarrow Table of the table's columns held by the driver
        (then `spark` is needed: for the first batch's read and a MERGE). Without an `app_id` (a
        write outside a streaming query) it always merges.
        """
        import pyarrow as pa
        from delta.tables import DeltaTable

        spark, path = spark or df.sparkSession, self.table.path(self.s)
        if self.appends(spans, spark) and app_id is not None:
            append_once(df, path, app_id, batch_id)
            how = "append"
        else:
            t = self.time_col
            lo, hi = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
            cond = (" AND ".join(f"t.{k} = s.{k}" for k in self.key)
                    + f" AND t.{t} BETWEEN timestamp_millis({lo}) AND timestamp_millis({hi})")
            if isinstance(df, pa.Table):
                df = spark.createDataFrame(df.select(self.table.schema.names), self.table.schema.spark_type())
            kill_point("mid-merge", 0.2)
            DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), cond).whenNotMatchedInsertAll().execute()
            how = "merge"
        for g, (_, hi) in spans.items():
            self.newest[g] = max(self.newest.get(g, hi), hi)
        dt = rs_table(path)
        self.version = dt.version()
        if app_id is not None and spans:     # a streaming commit: the stage's freshness, by the log's clock
            metrics.committed(self.table.name, max(hi for _, hi in spans.values()), last_commit_time(dt))
        return how


def last_commit_time(dt) -> float | None:
    """Epoch seconds of the newest data commit of a delta-rs table (its commitInfo timestamp, the
    time readers see; an auto-compaction's OPTIMIZE after it is skipped), None if not found."""
    for h in dt.history(4):
        if h.get("operation") != "OPTIMIZE" and h.get("timestamp") is not None:
            return h["timestamp"] / 1000.0
    return None


def appendable(spans: dict, newest: dict) -> bool:
    """Whether every group's rows are newer than its newest row in the table (pure): then no key
    can be there already, and a plain (idempotent) append inserts each row once."""
    return all(g not in newest or lo > newest[g] for g, (lo, _) in spans.items())


def spans_of(groups, times) -> dict:
    """Parallel sequences of group values and epoch ms -> {group: (min ms, max ms)} (pure)."""
    out: dict = {}
    for g, t in zip(groups, times):
        t = int(t)
        lo, hi = out.get(g, (t, t))
        out[g] = (min(lo, t), max(hi, t))
    return out


def rs_table(path: str):
    """The Delta table at `path` as a delta-rs DeltaTable: one per process, brought up to date."""
    from deltalake import DeltaTable

    uri = lake.rs_uri(path)
    dt = _rs_tables.get(uri)
    if dt is None:
        dt = _rs_tables[uri] = DeltaTable(uri)
    else:
        dt.update_incremental()
    return dt


def rs_query(path: str, sql: str):
    """A SQL query (DataFusion, through delta-rs) over the table at `path`, named `t`; a pyarrow Table.

    Delta's file statistics prune the files, so a minute of bronze reads in ~25 ms where Spark
    plans, skips and reads it in ~0.6 s (measured on a day of live bronze, 4k files). Strings
    come back as plain strings (DataFusion returns string views, which Spark does not take).
    """
    import pyarrow as pa
    from deltalake import QueryBuilder

    t = pa.table(QueryBuilder().register("t", rs_table(path)).execute(sql).read_all())
    return t.cast(pa.schema([pa.field(f.name, pa.string()) if f.type == pa.string_view() else f for f in t.schema]))


def read_stream(spark, table: Table, s: Settings):
    """A streaming read of a Delta table, at most TICKCAST_MAX_FILES_PER_TRIGGER files a batch."""
    return (spark.readStream.format("delta").option("maxFilesPerTrigger", s.max_files_per_trigger)
            .load(table.path(s)))


def start_sink(df, query: str, sink, s: Settings, available_now: bool, trigger_seconds: float | None = None,
               checkpoint: str | None = None, phase_seconds: float = 0.0):
    """Start `df` into the foreachBatch `sink` under the query's checkpoint; returns the StreamingQuery.

    `available_now` drains what is there and stops; otherwise a processing-time trigger of
    `trigger_seconds` (default TICKCAST_TRIGGER_SECONDS), its batches starting `phase_seconds` after
    each trigger boundary (jobs/trigger_phase.py). `checkpoint` defaults to the query's folder.
    """
    arm_kill_point(s)
    fb = sink
    if s.test_kill_at == "after-commit":
        def fb(batch, batch_id, _sink=sink):       # the sink has committed; Spark's commit log has not
            _sink(batch, batch_id)
            kill_point("after-commit")
    writer = (df.writeStream.queryName(query).outputMode("append").foreachBatch(fb)
              .option("checkpointLocation", checkpoint or tables.checkpoint(s, query)))
    if available_now:
        q = writer.trigger(availableNow=True).start()
    else:
        secs = s.trigger_seconds if trigger_seconds is None else trigger_seconds
        q = writer.trigger(processingTime=f"{secs:g} seconds").start()
        if phase_seconds > 0:
            import threading

            # The executor appears once the query's thread has planned its sources; other
            # queries need not wait for that.
            threading.Thread(target=trigger_phase.shift, args=(q, phase_seconds), daemon=True,
                             name=f"{query}-phase").start()
    if isinstance(sink, QuerySink):
        sink.bind(q.id)
    return q


def local_frame(spark, rows: list, schema):
    """A small DataFrame from rows held by the driver (tuples in schema order, or dicts), via Arrow.

    `spark.createDataFrame(list)` pickles the rows into a Python RDD, which a Python worker process
    has to run at every call (measured on ingest's per-batch clock: 50-row batch median 0.71 ->
    0.48 s without it); an Arrow table goes to the JVM as it is.
    """
    st = _struct(schema)
    return spark.createDataFrame(arrow_rows(rows, st), st)


def utc(ms: int):
    """Epoch ms -> an aware UTC datetime (for Arrow rows built in the driver)."""
    import datetime as dt

    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=int(ms))


def arrow_rows(rows: list, schema):
    """Driver-held rows (tuples in schema order, or dicts) -> a pyarrow Table of the Spark schema."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    st = _struct(schema)
    names = st.names
    dicts = [r if isinstance(r, dict) else dict(zip(names, r)) for r in rows]
    return pa.Table.from_pylist(dicts, schema=to_arrow_schema(st))


def _struct(schema):
    from pyspark.sql.types import StructType

    return schema if isinstance(schema, StructType) else StructType.fromDDL(schema)


def _local_path(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path
