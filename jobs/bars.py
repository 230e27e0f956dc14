"""Job `bars`: bronze.ticks (stream) -> silver.bars_1m, 1-minute bars by TRADE time.

A minute closes once the watermark (`TICKCAST_WATERMARK_SECONDS` behind the latest trade time
seen) passes its end, and its bar is written in that same micro-batch: the batch that brings the
trade moving the watermark reads the minutes it closed from bronze.ticks (up to what the stream
has delivered so far) and writes their bars. Spark's own windowed aggregation emits a window
only in the batch *after* the one that moved the watermark, one bars trigger later (7.5 s of
freshness at the default trigger), and keeps a state store it writes at every batch; here the
only state is the minute boundary closed through, which the table itself gives after a restart.
Trades that arrive after their minute closed are left out and counted
(`rows_dropped_by_watermark` in ops.stream_progress). The table is append-only: each bar is
inserted once (`delta_io.InsertOnce`: an idempotent append for minutes newer than every bar in the
table, an insert-only MERGE on (symbol, window_start) otherwise), so re-runs and restarts add
nothing twice and minutes already backfilled from klines are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from jobs.delta_io import InsertOnce, QuerySink
from tickcast import schemas, tables
from tickcast.settings import Settings

QUERY = "bars"
# The checkpoint, inside the query's folder. v2: the query has no stateful operator any more (bars
# are written in the batch that moves the watermark), and Spark refuses to resume a checkpoint whose
# state metadata names one; a v1 checkpoint is left where it is, and v2 starts by reading bronze's
# trade times once (closing nothing twice: bars are inserted once).
CHECKPOINT = "v2"
KIND_PREFERENCE = ("trade", "aggTrade")   # a symbol-minute with both kinds keeps its `trade` bar


def aggregate(ticks):
    """bronze.ticks rows -> one row per (symbol, event kind, minute) with OHLCV (pure transform).

    Open and close are the first and last trade by (trade time, id); trade_count counts the trades
    inside aggTrades (last - first + 1).
    """
    from pyspark.sql import functions as F

    order = F.struct("trade_time", "id")
    buy = ~F.col("is_buyer_maker")   # buyer is the taker: an aggressive buy
    zero = F.lit(0).cast(schemas.PRICE)
    return (ticks.groupBy("symbol", "event_kind", F.window("trade_time", "1 minute"))
            .agg(F.min_by("price", order).alias("open"),
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


def to_bars(agg):
    """Aggregates -> silver.bars_1m columns; `gapless` says the minute has no hole in its own ids."""
    from pyspark.sql import functions as F

    vol = F.col("volume").cast("double")
    return agg.select(
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
    )


@dataclass
class Prev:
    window_ms: int                 # minute start, epoch ms
    last_trade_id: int | None


def mark_complete(rows: list[dict], prev: dict[str, Prev]) -> list[dict]:
    """Choose one bar per (symbol, minute) and set `is_complete` (pure; updates `prev`).

    Rows carry `window_ms` (minute start, epoch ms). Complete = no gap in trade ids inside the
    minute, and the first trade id follows the previous bar's last one; a symbol's first minute in
    a stream (no previous bar) is incomplete.
    """
    best: dict[tuple, dict] = {}
    for r in rows:
        k = (r["symbol"], r["window_ms"])
        if k not in best or KIND_PREFERENCE.index(r["event_kind"]) < KIND_PREFERENCE.index(best[k]["event_kind"]):
            best[k] = r
    out = []
    for (sym, start), r in sorted(best.items()):
        p = prev.get(sym)
        follows = (p is not None and p.last_trade_id is not None and p.window_ms < start
                   and r["first_trade_id"] == p.last_trade_id + 1)
        out.append({k: v for k, v in r.items() if k != "gapless"} | {"is_complete": bool(r["gapless"] and follows)})
        if p is None or p.window_ms < start:
            prev[sym] = Prev(start, r["last_trade_id"])
    return out


def closed_through(max_trade_ms: int, watermark_seconds: int) -> int:
    """The latest minute boundary the watermark has passed: minutes ending at or before it are final (pure)."""
    wm = max_trade_ms - watermark_seconds * 1000
    return wm - wm % 60_000


class BarWriter(QuerySink):
    """foreachBatch sink over the tick stream: close the minutes the watermark passed, in this batch.

    Per batch: the latest trade time (the watermark) and the newest ingest time in the batch; a
    tick of a minute already closed is late (counted, left out). Minutes newly closed are
    aggregated from bronze.ticks, but only from rows ingested up to the batch's newest ingest time
    (ingest batches commit in ingest-time order), so a re-run batch aggregates the same ticks and
    a tick still to come on the stream is either in no bar or counted late, never both.

    After a (re)start the boundary closed through is the end of the latest bar from ticks: a lower
    bound (a quiet minute leaves no bar), and closing a minute twice inserts nothing. The previous
    bar per symbol (completeness) is kept in the driver and read from the table once after a
    (re)start. Minute starts travel through Python as epoch ms: PySpark turns timestamps into
    naive local-time datetimes, which would shift them on a non-UTC machine.
    """

    def __init__(self, s: Settings):
        super().__init__()
        self.s = s
        # Insert-only (the table is append-only); an idempotent append for a live batch's minutes,
        # which are newer than any bar in the table, a MERGE on (symbol, window_start) otherwise.
        self.insert = InsertOnce(tables.BARS, s, schemas.BARS_KEY)
        self.prev: dict[str, Prev] | None = None
        self.closed_ms: int | None = None          # minute boundary closed through (epoch ms)
        self.loaded = False

    def _load_closed(self, spark) -> int | None:
        from pyspark.sql import functions as F

        r = (spark.read.format("delta").load(tables.BARS.path(self.s)).where(F.col("source") == "ticks")
             .agg(F.max(F.unix_millis("window_end"))).first())
        return None if r[0] is None else int(r[0])

    def _load_prev(self, spark, before_ms: int) -> dict[str, Prev]:
        # Strictly before this batch: after a crash the batch being re-run may already be there.
        from pyspark.sql import functions as F

        df = (spark.read.format("delta").load(tables.BARS.path(self.s))
              .where(F.col("window_start") < F.timestamp_millis(F.lit(before_ms)))
              .groupBy("symbol")
              .agg(F.max_by(F.struct(F.unix_millis("window_start").alias("ms"), "last_trade_id"),
                            "window_start").alias("b")))
        return {r["symbol"]: Prev(r["b"]["ms"], r["b"]["last_trade_id"]) for r in df.collect()}

    def __call__(self, batch, batch_id: int) -> None:
        from pyspark.sql import functions as F

        from jobs import progress

        spark = batch.sparkSession
        if not self.loaded:
            self.closed_ms, self.loaded = self._load_closed(spark), True
        lo = self.closed_ms
        t = F.unix_millis("trade_time")
        late = F.count(F.when(t < lo, 1)) if lo is not None else F.lit(0)
        newest, cut, n_late = batch.agg(F.max(t), F.max(F.unix_micros("ingest_time")), late).first()
        progress.note(QUERY, batch_id, rows_dropped_by_watermark=int(n_late))
        if newest is None:
            return
        hi = closed_through(int(newest), self.s.watermark_seconds)
        if lo is not None and hi <= lo:
            return
        ticks = spark.read.format("delta").load(tables.TICKS.path(self.s)).where(
            (F.col("trade_time") < F.timestamp_millis(F.lit(hi))) & (F.unix_micros("ingest_time") <= F.lit(cut)))
        if lo is not None:
            ticks = ticks.where(F.col("trade_time") >= F.timestamp_millis(F.lit(lo)))
        self.write(spark, to_bars(aggregate(ticks)), batch_id)
        self.closed_ms = hi

    def write(self, spark, agg, batch_id: int | None = None) -> None:
        """Closed minutes' aggregates (`to_bars` rows) -> completeness -> inserted once.

        `batch_id` is the streaming batch's; without one (a one-off write) the insert is a MERGE.
        """
        from pyspark.sql import functions as F

        cols = [c for c in agg.columns if c not in ("window_start", "window_end")]
        rows = [r.asDict() for r in agg.select(F.unix_millis("window_start").alias("window_ms"), *cols).collect()]
        if not rows:
            return
        if self.prev is None:
            self.prev = self._load_prev(spark, min(r["window_ms"] for r in rows))
        bars = mark_complete(rows, self.prev)
        df = _bars_frame(spark, agg.select(*cols).schema, bars)
        out = df.select(
            F.timestamp_millis("window_ms").alias("window_start"),
            F.timestamp_millis(F.col("window_ms") + 60_000).alias("window_end"),
            "*", F.current_timestamp().alias("created_at"))
        self.insert(out.select(*schemas.BARS.names), min(b["window_ms"] for b in bars),
                    max(b["window_ms"] for b in bars), None if batch_id is None else self.app_id(QUERY), batch_id)


def _bars_frame(spark, agg_schema, bars: list[dict]):
    from pyspark.sql.types import BooleanType, LongType, StructField, StructType

    fields = [StructField("window_ms", LongType(), False)]
    fields += [f for f in agg_schema.fields if f.name != "gapless"]
    fields.append(StructField("is_complete", BooleanType(), False))
    schema = StructType(fields)
    from jobs.delta_io import local_frame

    return local_frame(spark, [tuple(b[f.name] for f in fields) for b in bars], schema)


def start(spark, s: Settings, available_now: bool = False):
    """Start the bars query on the bronze.ticks stream; returns the StreamingQuery."""
    from jobs.delta_io import ensure_table, start_sink

    ensure_table(spark, tables.TICKS, s)
    ensure_table(spark, tables.BARS, s)
    ticks = spark.readStream.format("delta").load(tables.TICKS.path(s)).select("trade_time", "ingest_time")
    # Its own trigger (TICKCAST_BARS_TRIGGER_SECONDS): a minute is final only once the watermark has
    # passed its end, so a bars batch every second would mostly find nothing to close. Triggers fall
    # on multiples of the interval: 7.5 s puts one at :07.5, just after a trade of :05 (the 5 s
    # watermark) is in bronze, and that batch writes the bar.
    return start_sink(ticks, QUERY, BarWriter(s), s, available_now, trigger_seconds=s.bars_trigger_seconds,
                      checkpoint=checkpoint(s))


def checkpoint(s: Settings) -> str:
    """The bars query's checkpoint."""
    return f"{tables.checkpoint(s, QUERY)}/{CHECKPOINT}"
