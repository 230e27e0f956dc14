"""Job `bars`: bronze.ticks (stream) -> silver.bars_1m, 1-minute bars by TRADE time.

A symbol's minute closes once it is final, and its bar is written in that same micro-batch:
- by the watermark (`TICKCAST_WATERMARK_SECONDS` behind the latest trade time seen) passing its
  end, as Spark's event-time windows would; or sooner,
- by its trade ids: Binance numbers a symbol's trades in matching order, so once every id up to a
  trade of a later minute is in bronze, no trade of the minute can still come (`IdRun`). With a
  liquid symbol that is a fraction of a second after the minute, not 5 s.
The batch that makes a minute final reads it from bronze.ticks (up to what the stream has
delivered so far) and writes its bar. Spark's own windowed aggregation emits a window only in the
batch *after* the one that moved the watermark and has no notion of the second rule; here the only
state is each symbol's minute boundary closed through (the table gives it after a restart) and
the runs of ids seen since the start. Trades that arrive after their minute closed are left out
and counted (`rows_dropped_by_watermark` in ops.stream_progress). The table is append-only: each
bar is inserted once (`delta_io.InsertOnce`: an idempotent append for minutes newer than every bar
of their symbol in the table, an insert-only MERGE on (symbol, window_start) otherwise), so re-runs
and restarts add nothing twice and minutes already backfilled from klines are left alone.
"""
from __future__ import annotations


from jobs import progress
from jobs.bar_rows import IdRun, Prev, bar_rows, batch_groups, closed_through, id_islands, mark_complete, tick_frame
from jobs.delta_io import InsertOnce, QuerySink, spans_of, start_sink, utc
from tickcast.engine.arrow_frames import arrow_rows
from tickcast.engine.columns import Columns
from tickcast.lake.follow import query as rs_query
from tickcast.lake.write import ensure_table
from tickcast import schemas, tables
from tickcast.settings import Settings
from tickcast.timeunits import MINUTE_MS

QUERY = "bars"
# The checkpoint, inside the query's folder. v2: the query has no stateful operator any more (bars
# are written in the batch that moves the watermark), and Spark refuses to resume a checkpoint whose
# state metadata names one; a v1 checkpoint is left where it is, and v2 starts by reading bronze's
# trade times once (closing nothing twice: bars are inserted once).
CHECKPOINT = "v2"
# The bronze.ticks columns `aggregate` reads.
AGGREGATE_INPUT = ("symbol", "event_kind", "id", "first_trade_id", "last_trade_id", "price", "quantity",
                   "quote_quantity", "trade_time", "is_buyer_maker")
RECENT_MS = 10 * MINUTE_MS     # closes spanning at most this much per symbol read bronze with delta-rs


def aggregate(ticks):
    """bronze.ticks rows -> one row per (symbol, event kind, minute) with OHLCV (pure transform).

    Open and close are the first and last trade by (trade time, id); trade_count counts the trades
    inside aggTrades (last - first + 1).
    """
    keys, aggs = once("aggregate", _aggregate_columns)
    return ticks.groupBy(*keys).agg(*aggs)


def to_bars(agg):
    """Aggregates -> silver.bars_1m columns, plus `gapless` (the minute has no hole in its own ids) and
    `max_id` (its last event id), which are not stored."""
    return agg.select(*once("to_bars", _bar_columns))


_columns = Columns()


def once(name: str, build):
    """`build()`'s Columns, built once per Spark JVM (ADR 0008, `tickcast.engine.columns`)."""
    return _columns.get(name, build)


def _aggregate_columns():
    """(grouping Columns, aggregate Columns) of `aggregate`."""
    from pyspark.sql import functions as F

    order = F.struct("trade_time", "id")
    buy = ~F.col("is_buyer_maker")   # buyer is the taker: an aggressive buy
    zero = F.lit(0).cast(schemas.PRICE)
    return (("symbol", "event_kind", F.window("trade_time", "1 minute")),
            (F.min_by("price", order).alias("open"),
             F.max("price").alias("high"),
             F.min("price").alias("low"),
             F.max_by("price", order).alias("close"),
             F.sum("quantity").alias("volume"),
             F.sum("quote_quantity").alias("quote_volume"),
             F.sum(F.col("last_trade_id") - F.col("first_trade_id") + 1).alias("trade_count"),
             F.count(F.lit(1)).alias("n_events"),
             F.sum(F.when(buy, F.col("quantity")).otherwise(zero)).alias("taker_buy_volume"),
             F.sum(F.when(buy, F.col("quote_quantity")).otherwise(F.lit(0).cast(schemas.QUOTE)))
              .alias("taker_buy_quote_volume"),
             F.sum(F.when(~buy, F.col("quantity")).otherwise(zero)).alias("taker_sell_volume"),
             F.min("first_trade_id").alias("first_trade_id"),
             F.max("last_trade_id").alias("last_trade_id"),
             F.min("id").alias("min_id"),
             F.max("id").alias("max_id")))


def _bar_columns():
    """The Columns `to_bars` selects."""
    from pyspark.sql import functions as F

    vol = F.col("volume").cast("double")
    return [
        "symbol",
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        "open", "high", "low", "close",
        F.col("volume").cast(schemas.VOLUME).alias("volume"),
        F.col("quote_volume").cast(schemas.QUOTE_VOLUME).alias("quote_volume"),
        F.when(vol > 0, F.col("quote_volume").cast("double") / vol).alias("vwap"),
        "trade_count",
        F.col("taker_buy_volume").cast(schemas.VOLUME).alias("taker_buy_volume"),
        F.col("taker_buy_quote_volume").cast(schemas.QUOTE_VOLUME).alias("taker_buy_quote_volume"),
        F.col("taker_sell_volume").cast(schemas.VOLUME).alias("taker_sell_volume"),
        F.when(vol > 0, (F.col("taker_buy_volume") - F.col("taker_sell_volume")).cast("double") / vol)
         .alias("imbalance"),
        "first_trade_id", "last_trade_id",
        F.lit("ticks").alias("source"),
        "event_kind",
        ((F.col("last_trade_id") - F.col("first_trade_id") + 1 == F.col("trade_count"))
         & (F.col("max_id") - F.col("min_id") + 1 == F.col("n_events"))).alias("gapless"),
        "max_id",                  # the minute's last event id, where the id runs restart (`IdRun.closed`)
    ]


class BarWriter(QuerySink):
    """foreachBatch sink over the tick stream: close the minutes that became final, in this batch.

    A symbol's minute is final once the watermark passes its end, or sooner once its trade ids are
    complete past it (`IdRun`). Per batch: the latest trade time (the watermark), the newest
    ingest time and, per (symbol, event kind), the runs of ids; a tick of a minute already closed
    is late (counted, left out). Minutes newly closed are aggregated from bronze.ticks, but only
    from rows ingested up to the batch's newest ingest time (ingest batches commit in ingest-time
    order), so a tick still to come on the stream is either in no bar or counted late, never both.

    After a (re)start each symbol's boundary closed through is the end of its latest bar from
    ticks: a lower bound (a quiet minute leaves no bar), and closing a minute twice inserts
    nothing; the id runs are read from bronze once (`_seed`). A symbol without a bar yet closes
    its first minute by the watermark, which gives its runs their base. The previous bar per
    symbol (completeness) is kept in the driver and read from the table once after a (re)start.
    Minute starts travel through Python as epoch ms: PySpark turns timestamps into naive
    local-time datetimes, which would shift them on a non-UTC machine.
    """

    def __init__(self, s: Settings, query: str = QUERY):
        super().__init__()
        self.s, self.query = s, query    # `query`: the query whose progress rows count the late ticks
        # Insert-only (the table is append-only); an idempotent append for a live batch's minutes,
        # which are newer than any bar in the table, a MERGE on (symbol, window_start) otherwise.
        self.insert = InsertOnce(tables.BARS, s, schemas.BARS_KEY)
        self.prev: dict[str, Prev] | None = None
        self.closed: dict[str, int | None] = {}   # symbol -> minute boundary closed through (epoch ms)
        self.floor: int | None = None               # closed through, for a symbol not in `closed`
        self.runs: dict[tuple[str, str], IdRun] = {}
        self.seen_ms: dict[str, int] = {}          # symbol -> latest trade time this run has seen
        self.loaded = self.swept = False

    def _load_closed(self, spark) -> dict[str, int]:
        from pyspark.sql import functions as F

        df = (spark.read.format("delta").load(tables.BARS.path(self.s)).where(F.col("source") == "ticks")
              .groupBy("symbol").agg(F.max(F.unix_millis("window_end")).alias("ms")))
        return {r["symbol"]: int(r["ms"]) for r in df.collect()}

    def _load_prev(self, spark, before_ms: int) -> dict[str, Prev]:
        # Strictly before this batch: after a crash the batch being re-run may already be there.
        from pyspark.sql import functions as F

        df = (spark.read.format("delta").load(tables.BARS.path(self.s))
              .where(F.col("window_start") < F.timestamp_millis(F.lit(before_ms)))
              .groupBy("symbol")
              .agg(F.max_by(F.struct(F.unix_millis("window_start").alias("ms"), "last_trade_id"),
                            "window_start").alias("b")))
        return {r["symbol"]: Prev(r["b"]["ms"], r["b"]["last_trade_id"]) for r in df.collect()}

    def _early(self, symbol: str) -> int | None:
        """The boundary the symbol's ids make final: the least over its event kinds seen in this run."""
        ends = [r.final_before() for (sym, _), r in self.runs.items() if sym == symbol]
        return None if not ends or None in ends else min(ends)

    def __call__(self, batch, batch_id: int) -> None:
        # The batch's few columns to the driver as Arrow in one job (no shuffle): its groups and id
        # runs are computed there (a Spark aggregate was ~50 ms more of every bars batch, 600 a
        # minute's worth of ingest commits in ten minutes).
        self.close(batch.sparkSession, batch.toArrow(), batch_id)

    def close(self, spark, arrow, batch_id: int) -> list[dict]:
        """A batch of bronze.ticks rows (Arrow: symbol, event_kind, id, trade_time, ingest_time, all
        in bronze already) -> the bars of the minutes they made final, inserted once; returns those
        bars (`mark_complete` rows, minute start as `window_ms`), [] when none closed."""
        if not self.loaded:
            self._begin_run(spark)
        ticks = tick_frame(arrow)
        groups = batch_groups(ticks, self.closed, self.floor)
        progress.note(self.query, batch_id, rows_dropped_by_watermark=sum(g["late"] for g in groups))
        rows = self._final_minutes(spark, ticks, groups) if groups else []
        return self._insert(spark, rows, batch_id) if rows else []

    def _begin_run(self, spark) -> None:
        """Each symbol's minute boundary closed through, from the table (once per run)."""
        self.closed, self.loaded = self._load_closed(spark), True
        self.floor = min(self.closed.values(), default=None)

    def _final_minutes(self, spark, ticks, groups: list[dict]) -> list[dict]:
        """The aggregates of the minutes the batch made final (`batch_groups` of its `tick_frame`)."""
        cut = max(g["cut"] for g in groups)
        if not self.runs:
            self._seed(spark, cut)
        for g in groups:
            self.closed.setdefault(g["symbol"], self.floor)
            self.seen_ms[g["symbol"]] = max(self.seen_ms.get(g["symbol"], g["t_max"]), g["t_max"])
        self._runs(ticks, groups)
        hi = closed_through(max(g["t_max"] for g in groups), self.s.watermark_seconds)
        # The watermark's minutes first: closing them gives a symbol new to this run its id runs'
        # base, and the minutes its ids then make final are closed in the same batch.
        rows = self._close(spark, {sym: hi for sym in self.closed}, cut)
        more = self._close(spark, {sym: e for sym in self.closed if (e := self._early(sym)) is not None}, cut)
        self.floor = hi if self.floor is None else max(self.floor, hi)
        return rows + more

    def _close(self, spark, to: dict[str, int], cut: int) -> list[dict]:
        """Aggregate each symbol's minutes from its boundary closed through up to `to[symbol]`, from
        bronze rows ingested up to `cut` (epoch µs); advance the boundaries and the id runs.
        Returns the aggregates."""
        from pyspark.sql import functions as F

        targets = {}                       # symbol -> (closed through, close through)
        for sym, end in to.items():
            lo = self.closed[sym]
            if lo is not None and end <= lo:
                continue
            # A symbol this run has seen no trade of since its boundary has nothing to close, once
            # the first close of the run has swept what was ingested before the (re)start.
            if self.swept and lo is not None and self.seen_ms.get(sym, -1) < lo:
                self.closed[sym] = end
                continue
            targets[sym] = (lo, end)
        if not targets:
            return []
        if all(lo is not None and end - lo <= RECENT_MS for lo, end in targets.values()):
            rows = bar_rows(self._recent_ticks(targets, cut))
        else:
            t = F.col("trade_time")
            cond = F.lit(False)
            for sym, (lo, end) in sorted(targets.items()):
                r = (F.col("symbol") == sym) & (t < F.timestamp_millis(F.lit(end)))
                cond = cond | (r & (t >= F.timestamp_millis(F.lit(lo))) if lo is not None else r)
            ticks = (spark.read.format("delta").load(tables.TICKS.path(self.s))
                     .where(cond & (F.unix_micros("ingest_time") <= F.lit(cut))))
            rows = _collect(to_bars(aggregate(ticks)))
        for r in rows:
            self.runs.setdefault((r["symbol"], r["event_kind"]), IdRun()).closed(r["max_id"])
        for sym, (_, end) in targets.items():
            self.closed[sym] = end
        self.swept = True
        return rows

    def _recent_ticks(self, targets: dict[str, tuple[int, int]], cut: int):
        """The ticks of a few recent minutes as Arrow, read by delta-rs (`tickcast.lake.follow.query`: ~25 ms,
        where a Spark read of bronze costs ~0.6 s even for one minute)."""
        import datetime as dt

        day = dt.datetime.fromtimestamp(min(lo for lo, _ in targets.values()) / 1000, dt.timezone.utc).date()
        # Symbols passed ingest's pattern (letters, digits, '_' and '-'): safe inside quotes.
        ranges = " OR ".join(f"(symbol = '{sym}' AND trade_time >= to_timestamp_millis({lo})"
                             f" AND trade_time < to_timestamp_millis({end}))"
                             for sym, (lo, end) in sorted(targets.items()))
        return rs_query(tables.TICKS.path(self.s),
                        f"SELECT {', '.join(AGGREGATE_INPUT)} FROM t WHERE date >= DATE '{day.isoformat()}'"
                        f" AND ({ranges}) AND ingest_time <= to_timestamp_micros({cut})")

    def _closed_col(self):
        """A Column: the tick's symbol's minute boundary closed through (epoch ms)."""
        from pyspark.sql import functions as F

        bound = F.lit(self.floor) if self.floor is not None else F.lit(None).cast("bigint")
        for sym, ms in self.closed.items():
            if ms is not None:
                bound = F.when(F.col("symbol") == sym, F.lit(ms)).otherwise(bound)
        return bound

    def _runs(self, ticks, groups: list[dict]) -> None:
        """Add the batch's ids to the runs: one stretch per group, or its stretches between gaps."""
        gappy = set()
        for g in groups:
            run = self.runs.setdefault((g["symbol"], g["event_kind"]), IdRun())
            if g["n"] == g["hi"] - g["lo"] + 1:
                run.add(g["lo"], g["hi"], g["hi_ms"])
            else:
                gappy.add((g["symbol"], g["event_kind"]))
        if gappy:
            keep = [k in gappy for k in zip(ticks["symbol"], ticks["event_kind"])]
            self._add_islands(ticks[keep])

    def _add_islands(self, ticks) -> None:
        for sym, kind, lo, hi, hi_ms in id_islands(ticks):
            self.runs.setdefault((sym, kind), IdRun()).add(lo, hi, hi_ms)

    def _seed(self, spark, cut: int) -> None:
        """After a (re)start: each symbol's id runs from bronze, so that its minutes close by id at once.

        The base is the last id of the symbol's last closed minute (the bar at its boundary has
        ticks); the runs are the ids of the ticks not closed yet, ingested up to `cut`.
        """
        from pyspark.sql import functions as F

        known = {sym: ms for sym, ms in self.closed.items() if ms is not None}
        if not known:
            return
        t = F.col("trade_time")
        near = F.lit(False)
        for sym, ms in sorted(known.items()):
            near = near | ((F.col("symbol") == sym) & (t >= F.timestamp_millis(F.lit(ms - MINUTE_MS))))
        rows = (spark.read.format("delta").load(tables.TICKS.path(self.s))
                .where(near & (F.unix_micros("ingest_time") <= F.lit(cut)))
                .select("symbol", "event_kind", "id", "trade_time", "ingest_time",
                        (F.unix_millis("trade_time") < self._closed_col()).alias("closed"))
                .toArrow())
        ticks = tick_frame(rows)
        closed = rows["closed"].to_numpy(zero_copy_only=False)
        self._add_islands(ticks[~closed])
        base = ticks[closed].groupby(["symbol", "event_kind"], sort=True)["id"].max()
        for (sym, kind), b in base.items():
            self.runs.setdefault((sym, kind), IdRun()).closed(int(b))

    def write(self, spark, agg, batch_id: int | None = None) -> None:
        """Closed minutes' aggregates (`to_bars` rows) -> completeness -> inserted once.

        `batch_id` is the streaming batch's; without one (a one-off write) the insert is a MERGE.
        """
        rows = _collect(agg)
        if rows:
            self._insert(spark, rows, batch_id)

    def _insert(self, spark, rows: list[dict], batch_id: int | None) -> list[dict]:
        import datetime as dt

        if self.prev is None:
            self.prev = self._load_prev(spark, min(r["window_ms"] for r in rows))
        bars = mark_complete(rows, self.prev)
        # From the driver's rows to the table as Arrow: a DataFrame of them only to collect them
        # again for delta-rs cost a Spark job in the batch that closes a minute.
        now = dt.datetime.now(dt.timezone.utc)
        out = arrow_rows([b | {"window_start": utc(b["window_ms"]), "window_end": utc(b["window_ms"] + MINUTE_MS),
                               "created_at": now} for b in bars], schemas.BARS.spark_type())
        spans = spans_of([b["symbol"] for b in bars], [b["window_ms"] for b in bars])
        self.insert(out, spans, None if batch_id is None else self.app_id(QUERY), batch_id, spark=spark)
        return bars


def _collect(agg) -> list[dict]:
    """`to_bars` rows -> dicts with the minute start as `window_ms` (epoch ms)."""
    from pyspark.sql import functions as F

    cols = [c for c in agg.columns if c not in ("window_start", "window_end")]
    return [r.asDict() for r in agg.select(F.unix_millis("window_start").alias("window_ms"), *cols).collect()]


def start(spark, s: Settings, available_now: bool = False):
    """Start the bars query on the bronze.ticks stream; returns the StreamingQuery."""
    ensure_table(spark, tables.TICKS, s)
    ensure_table(spark, tables.BARS, s)
    ticks = (spark.readStream.format("delta").load(tables.TICKS.path(s))
             .select("symbol", "event_kind", "id", "trade_time", "ingest_time"))
    # Its own trigger (TICKCAST_BARS_TRIGGER_SECONDS).
    return start_sink(ticks, QUERY, BarWriter(s), s, available_now, trigger_seconds=s.bars_trigger_seconds,
                      checkpoint=checkpoint(s))


def checkpoint(s: Settings) -> str:
    """The bars query's checkpoint."""
    return f"{tables.checkpoint(s, QUERY)}/{CHECKPOINT}"
