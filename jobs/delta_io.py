"""The jobs' streaming side of the Delta writes: sinks that learn their query, insert-once batches,
and small driver-side frames. Creating tables and appending are `tickcast.lake.write`'s."""
from __future__ import annotations

from tickcast.engine import trigger_clock
from tickcast.engine.arrow_frames import arrow_rows, local_frame  # noqa: F401 (re-exported)
from tickcast import metrics, tables
from tickcast.lake.follow import query as rs_query  # noqa: F401 (re-exported while importers move)
from tickcast.lake.follow import table as rs_table
from tickcast.lake.write import RS_MAX_ROWS, append_once, ensure_table, rs_append  # noqa: F401 (re-exported)
from tickcast.settings import Settings
from tickcast.tables import Table


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


def read_stream(spark, table: Table, s: Settings):
    """A streaming read of a Delta table, at most TICKCAST_MAX_FILES_PER_TRIGGER files a batch."""
    return (spark.readStream.format("delta").option("maxFilesPerTrigger", s.max_files_per_trigger)
            .load(table.path(s)))


def start_sink(df, query: str, sink, s: Settings, available_now: bool, trigger_seconds: float | None = None,
               checkpoint: str | None = None, phase_seconds: float = 0.0):
    """Start `df` into the foreachBatch `sink` under the query's checkpoint; returns the StreamingQuery.

    `available_now` drains what is there and stops; otherwise a processing-time trigger of
    `trigger_seconds` (default TICKCAST_TRIGGER_SECONDS), its batches starting `phase_seconds` after
    each trigger boundary (tickcast/engine/trigger_clock.py). `checkpoint` defaults to the query's folder.
    """
    writer = (df.writeStream.queryName(query).outputMode("append").foreachBatch(sink)
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
            threading.Thread(target=trigger_clock.shift, args=(q, phase_seconds), daemon=True,
                             name=f"{query}-phase").start()
    if isinstance(sink, QuerySink):
        sink.bind(q.id)
    return q


def utc(ms: int):
    """Epoch ms -> an aware UTC datetime (for Arrow rows built in the driver)."""
    import datetime as dt

    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=int(ms))
