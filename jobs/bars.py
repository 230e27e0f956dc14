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

from dataclasses import dataclass, field

from jobs import progress
from jobs.delta_io import InsertOnce, QuerySink, spans_of, start_sink, utc
from tickcast.engine.arrow_frames import arrow_rows
from tickcast.engine.columns import Columns
from tickcast.lake.follow import query as rs_query
from tickcast.lake.write import ensure_table
from tickcast import schemas, tables
from tickcast.settings import Settings

QUERY = "bars"
# The checkpoint, inside the query's folder. v2: the query has no stateful operator any more (bars
# are written in the batch that moves the watermark), and Spark refuses to resume a checkpoint whose
# state metadata names one; a v1 checkpoint is left where it is, and v2 starts by reading bronze's
# trade times once (closing nothing twice: bars are inserted once).
CHECKPOINT = "v2"
KIND_PREFERENCE = ("trade", "aggTrade")   # a symbol-minute with both kinds keeps its `trade` bar
# The bronze.ticks columns `aggregate` reads.
AGGREGATE_INPUT = ("symbol", "event_kind", "id", "first_trade_id", "last_trade_id", "price", "quantity",
                   "quote_quantity", "trade_time", "is_buyer_maker")
RECENT_MS = 10 * 60_000     # closes spanning at most this much per symbol read bronze with delta-rs


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
        out.append({k: v for k, v in r.items() if k not in ("gapless", "max_id")}
                   | {"is_complete": bool(r["gapless"] and follows)})
        if p is None or p.window_ms < start:
            prev[sym] = Prev(start, r["last_trade_id"])
    return out


@dataclass
class IdRun:
    """The trade ids of one (symbol, event kind) seen in this run, for closing minutes early (pure).

    Binance numbers the trades of a symbol in the order it matches them, so their times never go
    down as the ids go up. Once every id up to that of a trade of a later minute is in bronze, no
    trade of an earlier minute is still to come: the minute is final before the watermark passes it.
    `through`: every id up to it is seen, or belongs to a minute already closed; `through_ms`: the
    trade time of id `through` when this run saw it (None right after a close). `islands`: runs of
    ids seen above `through`, as (first id, last id, last id's trade time), sorted and disjoint.
    """
    through: int | None = None
    through_ms: int | None = None
    islands: list = field(default_factory=list)

    def add(self, lo: int, hi: int, hi_ms: int) -> None:
        """A run of consecutive ids seen (a batch's ids, or one stretch of them between gaps)."""
        self.islands.append((lo, hi, hi_ms))
        self.islands.sort()
        merged = []
        for a in self.islands:
            if merged and a[0] <= merged[-1][1] + 1:
                last = merged[-1]
                merged[-1] = (last[0], max(last[1], a[1]), a[2] if a[1] >= last[1] else last[2])
            else:
                merged.append(a)
        self.islands = merged
        self._advance()

    def closed(self, max_id: int) -> None:
        """A minute closed whose last id is `max_id`: a missing id below it could only be late now."""
        if self.through is None or max_id > self.through:
            self.through, self.through_ms = max_id, None
        self._advance()

    def final_before(self) -> int | None:
        """Minutes ending at or before this epoch ms are complete by id (None: unknown)."""
        return None if self.through_ms is None else self.through_ms - self.through_ms % 60_000

    def _advance(self) -> None:
        if self.through is None:          # nothing closed in this run yet: no base to count from
            return
        keep = []
        for lo, hi, hi_ms in self.islands:
            if lo <= self.through + 1 and hi > self.through:
                self.through, self.through_ms = hi, hi_ms
            elif lo > self.through + 1:
                keep.append((lo, hi, hi_ms))
        self.islands = keep


def closed_through(max_trade_ms: int, watermark_seconds: int) -> int:
    """The latest minute boundary the watermark has passed: minutes ending at or before it are final (pure)."""
    wm = max_trade_ms - watermark_seconds * 1000
    return wm - wm % 60_000


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

    def __init__(self, s: Settings):
        super().__init__()
        self.s = s
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
        spark = batch.sparkSession
        if not self.loaded:
            self._begin_run(spark)
        # The batch's few columns to the driver as Arrow in one job (no shuffle): its groups and id
        # runs are computed there (a Spark aggregate was ~50 ms more of every bars batch, 600 a
        # minute's worth of ingest commits in ten minutes).
        ticks = tick_frame(batch.toArrow())
        groups = batch_groups(ticks, self.closed, self.floor)
        progress.note(QUERY, batch_id, rows_dropped_by_watermark=sum(g["late"] for g in groups))
        rows = self._final_minutes(spark, ticks, groups) if groups else []
        if rows:
            self._insert(spark, rows, batch_id)

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
            near = near | ((F.col("symbol") == sym) & (t >= F.timestamp_millis(F.lit(ms - 60_000))))
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

    def _insert(self, spark, rows: list[dict], batch_id: int | None) -> None:
        import datetime as dt

        if self.prev is None:
            self.prev = self._load_prev(spark, min(r["window_ms"] for r in rows))
        bars = mark_complete(rows, self.prev)
        # From the driver's rows to the table as Arrow: a DataFrame of them only to collect them
        # again for delta-rs cost a Spark job in the batch that closes a minute.
        now = dt.datetime.now(dt.timezone.utc)
        out = arrow_rows([b | {"window_start": utc(b["window_ms"]), "window_end": utc(b["window_ms"] + 60_000),
                               "created_at": now} for b in bars], schemas.BARS.spark_type())
        spans = spans_of([b["symbol"] for b in bars], [b["window_ms"] for b in bars])
        self.insert(out, spans, None if batch_id is None else self.app_id(QUERY), batch_id, spark=spark)


def tick_frame(arrow):
    """bronze.ticks rows as Arrow (symbol, event_kind, id, trade_time, ingest_time) -> a pandas frame
    with trade time in epoch ms (`t`) and ingest time in epoch µs (`cut`)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    def epoch(col, unit):
        return pc.cast(pc.cast(arrow[col], pa.timestamp(unit, tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)

    return pd.DataFrame({"symbol": arrow["symbol"].to_numpy(zero_copy_only=False),
                         "event_kind": arrow["event_kind"].to_numpy(zero_copy_only=False),
                         "id": arrow["id"].to_numpy(zero_copy_only=False),
                         "t": epoch("trade_time", "ms"), "cut": epoch("ingest_time", "us")})


def batch_groups(ticks, closed: dict, floor: int | None) -> list[dict]:
    """Per (symbol, event kind) of a batch's `tick_frame` (pure): id bounds and count (`lo`, `hi`,
    `n`), the trade time of the highest id (`hi_ms`), the latest trade time (`t_max`), the newest
    ingest time (`cut`) and the ticks late for their symbol's minute boundary closed through
    (`closed[symbol]`, else `floor`; none is late without a boundary)."""
    import numpy as np

    if not len(ticks):
        return []
    bound = np.array([ms if (ms := closed.get(sym)) is not None else (np.nan if floor is None else floor)
                      for sym in ticks["symbol"]], dtype=float)
    df = ticks.assign(late=ticks["t"].to_numpy() < bound).sort_values("id", kind="stable")
    agg = df.groupby(["symbol", "event_kind"], sort=True).agg(
        lo=("id", "min"), hi=("id", "max"), n=("id", "size"), hi_ms=("t", "last"), t_max=("t", "max"),
        cut=("cut", "max"), late=("late", "sum"))
    return [{"symbol": sym, "event_kind": kind, **{k: int(v) for k, v in r.items()}}
            for (sym, kind), r in agg.iterrows()]


def id_islands(ticks) -> list[tuple]:
    """The stretches of consecutive ids in a `tick_frame` (pure): (symbol, event kind, first id, last
    id, last id's trade time), by symbol, kind and id. Consecutive ids share id - their rank."""
    if not len(ticks):
        return []
    df = ticks.drop_duplicates(["symbol", "event_kind", "id"]).sort_values(["symbol", "event_kind", "id"])
    df = df.assign(island=df["id"] - df.groupby(["symbol", "event_kind"]).cumcount())
    agg = df.groupby(["symbol", "event_kind", "island"], sort=True).agg(
        lo=("id", "min"), hi=("id", "max"), hi_ms=("t", "last"))
    return [(sym, kind, int(r["lo"]), int(r["hi"]), int(r["hi_ms"])) for (sym, kind, _), r in agg.iterrows()]


def bar_rows(ticks) -> list[dict]:
    """`aggregate` then `to_bars`, on a few minutes of ticks held by the driver (pure; Arrow in, the
    dicts `_collect` gives out, equal value for value: a Spark test compares them).

    Why a second implementation: a live bars batch that closes a minute spent 200-500 ms running
    Spark's aggregate over the ~3k ticks of one minute (a local relation, a shuffle, a collect); this
    takes a few ms. Sums are exact (Decimal, at a precision past DECIMAL(38,x)); VWAP and imbalance
    are doubles from the exact sums, as Spark casts them.
    """
    import decimal

    import pyarrow as pa
    import pyarrow.compute as pc

    if not ticks.num_rows:
        return []
    ms = pc.cast(ticks["trade_time"], pa.timestamp("us", tz="UTC")).cast(pa.int64())
    t = ticks.select(["symbol", "event_kind", "id", "first_trade_id", "last_trade_id", "price", "quantity",
                      "quote_quantity", "is_buyer_maker"]).append_column("us", ms)
    t = t.sort_by([("symbol", "ascending"), ("event_kind", "ascending"), ("us", "ascending"), ("id", "ascending")])
    cols = t.to_pydict()
    out, groups = [], {}
    for i, (sym, kind, us) in enumerate(zip(cols["symbol"], cols["event_kind"], cols["us"])):
        groups.setdefault((sym, kind, (us // 1000) // 60_000 * 60_000), []).append(i)
    zero8, zero16 = decimal.Decimal("0E-8"), decimal.Decimal("0E-16")
    with decimal.localcontext(decimal.Context(prec=80)):
        for (sym, kind, window_ms), idx in groups.items():
            price = [cols["price"][i] for i in idx]
            qty = [cols["quantity"][i] for i in idx]
            quote = [cols["quote_quantity"][i] for i in idx]
            buy = [not cols["is_buyer_maker"][i] for i in idx]
            first = [cols["first_trade_id"][i] for i in idx]
            last = [cols["last_trade_id"][i] for i in idx]
            ids = [cols["id"][i] for i in idx]
            volume, quote_volume = sum(qty, zero8), sum(quote, zero16)
            buy_vol = sum((q for q, b in zip(qty, buy) if b), zero8)
            sell_vol = sum((q for q, b in zip(qty, buy) if not b), zero8)
            trade_count = sum(b - a + 1 for a, b in zip(first, last))
            vol = float(volume)
            out.append({
                "window_ms": window_ms, "symbol": sym, "open": price[0], "high": max(price), "low": min(price),
                "close": price[-1], "volume": volume, "quote_volume": quote_volume,
                "vwap": float(quote_volume) / vol if vol > 0 else None, "trade_count": trade_count,
                "taker_buy_volume": buy_vol,
                "taker_buy_quote_volume": sum((q for q, b in zip(quote, buy) if b), zero16),
                "taker_sell_volume": sell_vol,
                "imbalance": float(buy_vol - sell_vol) / vol if vol > 0 else None,
                "first_trade_id": min(first), "last_trade_id": max(last), "source": "ticks", "event_kind": kind,
                "gapless": max(last) - min(first) + 1 == trade_count and max(ids) - min(ids) + 1 == len(ids),
                "max_id": max(ids)})
    return out


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
