"""Job `ingest`: Kafka topic `ticks` -> bronze.ticks (typed, unique per trade) + bronze.quarantine.

Exactly once: the Kafka offsets live in the checkpoint; each micro-batch inserts only trades whose
(symbol, event kind, id) is not in the table yet (a plain append when every id is above the table's
highest, else an insert-only Delta MERGE), and quarantine rows are appended with Delta's
idempotent-write options keyed by the batch id. A batch re-run after a crash, or a replay of the
same file, therefore adds nothing twice.
"""
from __future__ import annotations

import datetime as dt
import logging

from jobs.delta_io import QuerySink, start_sink, utc
from jobs.tick_parse import good, parse, parse_all, parse_columns, quarantined, settle  # noqa: F401 (parse_all: ingest.parse_all)
from tickcast.engine.arrow_frames import arrow_rows
from tickcast.engine.columns import Columns
from tickcast.lake.write import RS_MAX_ROWS, append_once, ensure_table, rs_append
from tickcast import data_loss, metrics, schemas, tables
from tickcast.settings import Settings

log = logging.getLogger("tickcast.ingest")
QUERY = "ingest"
# The columns of a batch's good ticks a subclass may keep (`TickWriter.keep_ticks`): what bars closes minutes by.
TICK_KEEP = ("symbol", "event_kind", "id", "trade_time", "ingest_time")


def read_topic(spark, s: Settings):
    """The raw trade topic as a stream, from the earliest offset on a fresh checkpoint."""
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", s.kafka_bootstrap)
              .option("subscribe", s.topic)
              .option("startingOffsets", "earliest")
              .option("includeHeaders", "true")
              # Data deleted by retention before ingest saw it is reported, not fatal.
              .option("failOnDataLoss", "false"))
    if s.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", s.max_offsets_per_trigger)
    # At least one task per core even when the data sits in fewer topic partitions (few symbols).
    reader = reader.option("minPartitions", spark.sparkContext.defaultParallelism)
    return reader.load()


def merge_condition(bounds: list[tuple[str, str, int, int]], dates: list) -> str:
    """The MERGE condition: the key, plus literal bounds so Delta skips files outside this batch.

    Args:
        bounds: (symbol, event kind, min id, max id) per group in the batch.
        dates: the trade dates in the batch (sorted).
    """
    cond = ["t.symbol = s.symbol", "t.event_kind = s.event_kind", "t.id = s.id", "t.date = s.date"]
    if len(dates) > 64:
        cond.append(f"t.date BETWEEN DATE'{dates[0].isoformat()}' AND DATE'{dates[-1].isoformat()}'")
    elif dates:
        cond.append("t.date IN (" + ", ".join(f"DATE'{d.isoformat()}'" for d in dates) + ")")
    if bounds and len(bounds) <= 64:
        ranges = [f"(t.symbol = '{sym}' AND t.event_kind = '{kind}' AND t.id BETWEEN {lo} AND {hi})"
                  for sym, kind, lo, hi in bounds]
        cond.append("(" + " OR ".join(ranges) + ")")
    return " AND ".join(cond)


# The ingest query's own write settings (measured appending 1M parsed ticks from the cache, best of
# 3: 2.10 s -> 1.48 s together):
WRITE_CONF = {
    # A date-partitioned write sorts each task's rows by date first unless it may keep one open
    # file per date; a batch spans one date, two around midnight.
    "spark.sql.maxConcurrentOutputFileWriters": "4",
    # No dictionary attempt on columns that are unique (or nearly) per tick: Parquet builds the
    # dictionary, finds it too big and falls back to plain anyway (the same bytes on disk).
    **{f"parquet.enable.dictionary#{c}": "false" for c in (
        "id", "first_trade_id", "last_trade_id", "kafka_offset", "trade_time", "event_time",
        "kafka_timestamp", "quote_quantity")},
}


def id_bounds(ticks) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    """Good ticks as Arrow -> {(symbol, event kind): (min id, max id, rows, distinct ids)} (pure)."""
    agg = ticks.group_by(["symbol", "event_kind"]).aggregate(
        [("id", "min"), ("id", "max"), ("id", "count"), ("id", "count_distinct")])
    return {(r["symbol"], r["event_kind"]): (r["id_min"], r["id_max"], r["id_count"], r["id_count_distinct"])
            for r in agg.to_pylist()}


def offset_bounds(rows) -> dict[tuple[str, int], tuple[int, int]]:
    """Quarantine rows as Arrow -> {(topic, partition): (min offset, max offset)} (pure)."""
    agg = rows.group_by(["kafka_topic", "kafka_partition"]).aggregate([("kafka_offset", "min"),
                                                                       ("kafka_offset", "max")])
    return {(r["kafka_topic"], r["kafka_partition"]): (r["kafka_offset_min"], r["kafka_offset_max"])
            for r in agg.to_pylist()}


def appendable_offsets(bounds: dict, max_offset: dict) -> bool:
    """Whether every partition's offsets are above the quarantine's highest for it (pure): then an
    append adds each record once."""
    return all(lo > max_offset.get(g, -1) for g, (lo, _) in bounds.items())


def appendable_ids(bounds: dict, max_id: dict) -> bool:
    """Whether a plain append inserts every tick once (pure): per group, ids distinct and all above
    the table's highest."""
    return all(lo > max_id.get(g, -1) and n == distinct for g, (lo, _, n, distinct) in bounds.items())


class LostOffsets:
    """Kafka offsets an ingest batch planned but could not read (deleted by retention before ingest
    saw them): appended to ops.lost_offsets once per batch and logged loudly.

    `app_id(name)`: the query's idempotent-append id (`delta_io.QuerySink.app_id`).
    """

    def __init__(self, s: Settings, app_id):
        self.s, self.app_id = s, app_id
        self.planned: dict = {}                  # this batch's planned offset range per (topic, partition)
        self.read: dict | None = None            # records it read per (topic, partition), when short

    def expect(self, batch_id: int) -> None:
        """Take the batch's planned ranges from the checkpoint (before it is read)."""
        planned = data_loss.planned_ranges(tables.checkpoint(self.s, QUERY), batch_id)
        self.planned = {g: r for g, r in (planned or {}).items() if g[0] == self.s.topic}
        self.read = None
        for topic, partition in self.planned:     # every partition read has a series, 0 until a loss
            metrics.LOST_OFFSETS.labels(topic, str(partition))

    def short(self, rows: int) -> bool:
        """Whether the batch read fewer records than it planned (then count what it read per partition)."""
        return bool(self.planned) and rows != sum(hi - lo for lo, hi in self.planned.values())

    def record(self, batch_id: int) -> int:
        """Append the batch's losses once; returns how many offsets were lost."""
        if not self.planned or self.read is None:
            return 0
        lost = data_loss.losses(self.planned, self.read)
        if not lost:
            return 0
        now = utc(int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000))
        recs = [(QUERY, t, p, batch_id, *self.planned[(t, p)], self.read.get((t, p), 0), n, now)
                for (t, p), n in sorted(lost.items())]
        append_once(arrow_rows(recs, schemas.LOST_OFFSETS.spark_type()), tables.LOST_OFFSETS.path(self.s),
                    self.app_id(f"{QUERY}-lost"), batch_id)
        metrics.add_lost_offsets(lost)
        total = sum(lost.values())
        log.error("ingest batch %d: %d Kafka offsets were gone before ingest read them (retention): %s",
                  batch_id, total, data_loss.describe(lost))
        return total


class TickWriter(QuerySink):
    """foreachBatch sink: quarantine (idempotent append) and ticks (append or insert-only merge).

    Trade ids rise per (symbol, kind), and this query is the table's one writer, so the driver
    knows the table's highest id per group (read from the table at the first batch after every
    start, then kept up to date). A batch whose ids are all above it and distinct (the live case)
    is a plain append; anything else (a replay, a batch re-run after a crash whose append had
    landed, out-of-order or repeated ids) goes through the insert-only MERGE on the key.

    Two ways through, the same rows out. A live batch (the run's previous batch had at most
    `tickcast.lake.write.RS_MAX_ROWS` rows) is parsed by Spark and collected as Arrow in one job, checked in
    the driver and appended with delta-rs (`_small`): a Spark Delta append was ~0.3 s of every
    live batch. Anything else (the first batch of a run, which may hold a backlog; a batch with
    rows the typed pass left undecided; one that needs the MERGE) takes the distributed path:
    parse, cache, one aggregate for the counts, Spark's writer or MERGE (`_large`).
    """

    def __init__(self, s: Settings):
        super().__init__()
        self.s = s
        self.max_id: dict[tuple[str, str], int] | None = None
        self.q_max: dict[tuple[str, int], int] = {}   # quarantine: (topic, partition) -> highest offset
        self.appends = self.merges = 0
        self.last_rows: int | None = None      # rows of this run's previous batch
        self._columns: tuple | None = None
        self._built = Columns()      # the parse Columns, once per JVM (ADR 0008)
        self.losses = LostOffsets(s, self.app_id)
        # Whether a batch's good ticks are kept as Arrow (`batch_ticks`, TICK_KEEP columns) for a
        # subclass that goes on with them after the commit (jobs/hotpath.py).
        self.keep_ticks = False
        self.batch_ticks = None

    def _load_max_offsets(self, spark) -> dict[tuple[str, int], int]:
        from pyspark.sql import functions as F

        df = spark.read.format("delta").load(tables.QUARANTINE.path(self.s))
        return {(r["kafka_topic"], r["kafka_partition"]): r["hi"] for r in
                df.groupBy("kafka_topic", "kafka_partition").agg(F.max("kafka_offset").alias("hi")).collect()}

    def _load_max_ids(self, spark) -> dict[tuple[str, str], int]:
        from pyspark.sql import functions as F

        df = spark.read.format("delta").load(tables.TICKS.path(self.s))
        return {(r["symbol"], r["event_kind"]): r["hi"] for r in
                df.groupBy("symbol", "event_kind").agg(F.max("id").alias("hi")).collect()}

    def __call__(self, batch, batch_id: int) -> dict:
        if self.max_id is None:        # the first batch of this run
            self._begin_run(batch.sparkSession)
        parsed = parse(batch, self.s, dt.datetime.now(dt.timezone.utc), self._columns)
        self.batch_ticks = None
        self.losses.expect(batch_id)
        live = self.last_rows is not None and self.last_rows <= RS_MAX_ROWS
        out = (self._small(parsed.toArrow(), batch_id) if live else None) or \
            self._large(parsed, batch.sparkSession, batch_id)
        self.last_rows = out["ticks"] + out["quarantined"]
        metrics.QUARANTINED.inc(out["quarantined"])
        out["lost"] = self.losses.record(batch_id)
        return out

    def _begin_run(self, spark) -> None:
        """The run's session settings, and the tables' highest ids and offsets."""
        # This query's own session (Spark clones it per stream, the same for all its batches).
        # Adaptive execution splits every shuffle into a job of its own; with 2 shuffle
        # partitions it only adds jobs (measured on 60-row batches: 4 -> 2 Spark jobs, batch
        # median 2.10 -> 1.82 s).
        spark.conf.set("spark.sql.adaptive.enabled", "false")
        # The batch is cached only to be read twice (stats, then the write): compressing the
        # cache cost more than it saved (measured on 1M ticks: parse+cache+stats 8.6 -> 6.7 s).
        spark.conf.set("spark.sql.inMemoryColumnarStorage.compressed", "false")
        for k, v in WRITE_CONF.items():
            spark.conf.set(k, v)
        self.max_id = self._load_max_ids(spark)
        self.q_max = self._load_max_offsets(spark)
        metrics.set_lost_offsets(data_loss.lost_offsets(self.s))   # the totals so far; batches add theirs
        self._columns = self._built.get("parse", lambda: parse_columns(self.s))

    def _small(self, parsed, batch_id: int) -> dict | None:
        """The live path over the batch's parsed rows as Arrow; None (nothing written) when the batch
        needs the distributed path: rows left to the text pass, or ids not all new."""
        import pyarrow.compute as pc

        if parsed.num_rows and pc.any(parsed["retry"]).as_py():
            return None
        if self.losses.short(parsed.num_rows):
            vc = parsed.group_by(["kafka_topic", "kafka_partition"]).aggregate([("kafka_offset", "count")])
            self.losses.read = {(r["kafka_topic"], r["kafka_partition"]): r["kafka_offset_count"]
                                for r in vc.to_pylist()}
        bad = pc.is_valid(parsed["reason"])
        ticks = parsed.filter(pc.invert(bad)).select(list(schemas.TICKS.names))
        bounds = id_bounds(ticks)
        if not appendable_ids(bounds, self.max_id):
            return None
        if self.keep_ticks:
            self.batch_ticks = ticks.select(list(TICK_KEEP))
        n_bad = parsed.num_rows - ticks.num_rows
        qrows = parsed.filter(bad).select(list(schemas.QUARANTINE.names)) if n_bad else None
        if n_bad and not appendable_offsets(offset_bounds(qrows), self.q_max):
            return None                          # offsets seen before (a reset checkpoint): MERGE
        if n_bad:
            append_once(qrows, tables.QUARANTINE.path(self.s), self.app_id(f"{QUERY}-quarantine"), batch_id)
            self._advance_offsets(offset_bounds(qrows))
        if ticks.num_rows:
            # No txnAppId, as in `_large`'s append: a re-run batch finds its ids no longer new.
            rs_append(ticks, tables.TICKS.path(self.s))
            self.appends += 1
        self._advance(bounds)
        return {"batch_id": batch_id, "ticks": ticks.num_rows, "quarantined": n_bad}

    def _large(self, parsed, spark, batch_id: int) -> dict:
        from delta.tables import DeltaTable

        cached = [parsed.persist()]
        try:
            parsed = cached[0]
            stats = self._stats(parsed)
            if self.losses.short(sum(r["n"] for r in stats)):
                self.losses.read = {(r["kafka_topic"], r["kafka_partition"]): r["count"] for r in
                                    parsed.groupBy("kafka_topic", "kafka_partition").count().collect()}
            if any(r["retry"] for r in stats):        # rows the typed pass left to the text pass
                parsed = settle(parsed, self.s, self._columns).persist()
                cached.append(parsed)
                stats = self._stats(parsed)
            n_bad = sum(r["n"] for r in stats if not r["ok"])
            good_stats = [r for r in stats if r["ok"]]
            n_good = sum(r["n"] for r in good_stats)
            if n_bad:
                self._quarantine(spark, quarantined(parsed), batch_id, n_bad)
            if n_good:
                ticks = good(parsed)
                if self.keep_ticks:
                    self.batch_ticks = ticks.select(*TICK_KEEP).toArrow()
                bounds = {(r["symbol"], r["event_kind"]): (r["lo"], r["hi"], r["n"], r["ids"]) for r in good_stats}
                if appendable_ids(bounds, self.max_id):
                    # A plain append, no txnAppId (Spark's idempotent-write check reads the table's
                    # state: 3 Spark jobs per batch, measured batch median 3.3 -> 2.1 s). Not needed:
                    # a batch re-run after a crash whose append had landed finds its ids no longer
                    # above the table's highest (re-read from the table after every start) and goes
                    # through the insert-only MERGE below.
                    ticks.write.format("delta").mode("append").save(tables.TICKS.path(self.s))
                    self.appends += 1
                else:
                    dates = sorted({r["d0"] + dt.timedelta(days=i) for r in good_stats
                                    for i in range((r["d1"] - r["d0"]).days + 1)})
                    (DeltaTable.forPath(spark, tables.TICKS.path(self.s)).alias("t")
                     .merge(ticks.dropDuplicates(list(schemas.TICKS_KEY)).alias("s"),
                            merge_condition([(*g, lo, hi) for g, (lo, hi, _, _) in bounds.items()], dates))
                     .whenNotMatchedInsertAll()
                     .execute())
                    self.merges += 1
                self._advance(bounds)
            return {"batch_id": batch_id, "ticks": n_good, "quarantined": n_bad}
        finally:
            for df in cached:
                df.unpersist()

    def _quarantine(self, spark, rows, batch_id: int, n: int) -> None:
        """Quarantine rows, each once by its Kafka coordinates: an idempotent append (txn id: query
        id + batch id) when every offset is above the table's highest for its partition, else an
        insert-only MERGE on the coordinates. The txn id alone re-appended everything after a
        deleted checkpoint (a new query id reading the topic from the start)."""
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        b = {(r["kafka_topic"], r["kafka_partition"]): (r["lo"], r["hi"]) for r in
             rows.groupBy("kafka_topic", "kafka_partition")
             .agg(F.min("kafka_offset").alias("lo"), F.max("kafka_offset").alias("hi")).collect()}
        path = tables.QUARANTINE.path(self.s)
        if appendable_offsets(b, self.q_max):
            append_once(rows, path, self.app_id(f"{QUERY}-quarantine"), batch_id, rows=n)
        else:
            ranges = " OR ".join(f"(t.kafka_topic = '{t}' AND t.kafka_partition = {p} AND t.kafka_offset BETWEEN "
                                 f"{lo} AND {hi})" for (t, p), (lo, hi) in b.items())
            (DeltaTable.forPath(spark, path).alias("t")
             .merge(rows.dropDuplicates(list(schemas.QUARANTINE_KEY)).alias("s"),
                    " AND ".join(f"t.{k} = s.{k}" for k in schemas.QUARANTINE_KEY) + f" AND ({ranges})")
             .whenNotMatchedInsertAll().execute())
        self._advance_offsets(b)

    def _advance_offsets(self, b: dict) -> None:
        for g, (_, hi) in b.items():
            self.q_max[g] = max(hi, self.q_max.get(g, -1))

    def _advance(self, bounds: dict) -> None:
        """The table's highest id per group, after inserting ticks of these `id_bounds`."""
        for g, (_, hi, _, _) in bounds.items():
            self.max_id[g] = max(hi, self.max_id.get(g, -1))

    @staticmethod
    def _stats(parsed) -> list:
        """Rows (ok, symbol, event_kind, lo, hi, n, ids, d0, d1, retry) per group: min and max id, rows,
        distinct ids, min and max date.

        One aggregate fills the cache and yields the counts and per-group id bounds. Distinct ids
        per group as size(array_distinct(collect_list)): no shuffle of every id, unlike
        countDistinct (measured 0.3-0.8 s vs 2-4 s per 1M rows); dates as min/max, not collect_set
        (an object aggregate that made the distinct aggregate sort-based: 10 s).
        """
        from pyspark.sql import functions as F

        ok = (F.col("reason").isNull() & ~F.col("retry")).alias("ok")
        return (parsed.groupBy(ok, "symbol", "event_kind", "retry")
                .agg(F.min("id").alias("lo"), F.max("id").alias("hi"), F.count(F.lit(1)).alias("n"),
                     F.size(F.array_distinct(F.collect_list("id"))).alias("ids"),
                     F.min("date").alias("d0"), F.max("date").alias("d1"))
                .select("ok", "symbol", "event_kind", "lo", "hi", "n", "ids", "d0", "d1", "retry")
                .collect())


def start(spark, s: Settings, available_now: bool = False):
    """Start the ingest query; returns the StreamingQuery."""
    for t in (tables.TICKS, tables.QUARANTINE, tables.LOST_OFFSETS):
        ensure_table(spark, t, s)
    return start_sink(read_topic(spark, s), QUERY, TickWriter(s), s, available_now,
                      phase_seconds=s.ingest_phase_seconds)
