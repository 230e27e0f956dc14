"""The driver's side of closing minutes (pure, for the bars job): which minutes are final (`IdRun`,
`closed_through`), their bars aggregated from Arrow ticks (`tick_frame`, `batch_groups`,
`id_islands`, `bar_rows`), and whether each is complete (`Prev`, `mark_complete`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from tickcast.timeunits import MINUTE_MS

KIND_PREFERENCE = ("trade", "aggTrade")   # a symbol-minute with both kinds keeps its `trade` bar


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
        return None if self.through_ms is None else self.through_ms - self.through_ms % MINUTE_MS

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
    return wm - wm % MINUTE_MS


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
        groups.setdefault((sym, kind, (us // 1000) // MINUTE_MS * MINUTE_MS), []).append(i)
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
