"""`tickcast backfill --klines FILE...`: Binance 1m kline files -> silver.bars_1m (source = klines).

Insert-only: minutes already in the table (from ticks or an earlier backfill) are left alone, so
the table stays append-only and a clean streaming source. Run it before `bars` starts or while it
is stopped: one writer at a time per table.
"""
from __future__ import annotations

import re
from pathlib import Path

from tickcast import schemas, tables
from tickcast.settings import Settings

KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
                 "trade_count", "taker_buy_volume", "taker_buy_quote_volume", "ignore")
_SYMBOL = re.compile(r"([A-Z0-9]{4,20})-1m-", re.I)


def symbol_of(path: Path) -> str | None:
    m = _SYMBOL.search(path.name)
    return m.group(1).upper() if m else None


def read_klines(path: Path, symbol: str | None = None):
    """One kline file (plain, .gz or .zip; ms or µs; with or without header) -> pandas, all strings."""
    import pandas as pd

    from producers.replay import open_bytes

    sym = symbol or symbol_of(path)
    if not sym:
        raise ValueError(f"{path}: cannot tell the symbol from the file name; pass --symbol")
    with open_bytes(path) as f:
        df = pd.read_csv(f, header=None, names=KLINE_COLUMNS, dtype=str, usecols=range(12))
    df = df[df["open_time"].str.strip().str.isdigit()]       # drops a header row if there is one
    df.insert(0, "symbol", sym)
    return df


def to_bars(raw):
    """Kline rows (strings) -> silver.bars_1m columns (pure transform)."""
    from pyspark.sql import functions as F

    t = F.col("open_time").cast("bigint")
    ms = F.when(t >= 10**14, F.floor(t / 1000)).otherwise(t)   # µs files since 2025-01-01
    vol = F.col("volume").cast(schemas.VOLUME)
    buy = F.col("taker_buy_volume").cast(schemas.VOLUME)
    sell = (vol - buy).cast(schemas.VOLUME)
    dvol = vol.cast("double")
    return raw.select(
        "symbol",
        F.timestamp_millis(ms).alias("window_start"),
        F.timestamp_millis(ms + 60_000).alias("window_end"),
        *[F.col(c).cast(schemas.PRICE).alias(c) for c in ("open", "high", "low", "close")],
        vol.alias("volume"),
        F.col("quote_volume").cast(schemas.QUOTE_VOLUME).alias("quote_volume"),
        F.when(dvol > 0, F.col("quote_volume").cast("double") / dvol).alias("vwap"),
        F.col("trade_count").cast("bigint").alias("trade_count"),
        buy.alias("taker_buy_volume"),
        F.col("taker_buy_quote_volume").cast(schemas.QUOTE_VOLUME).alias("taker_buy_quote_volume"),
        sell.alias("taker_sell_volume"),
        F.when(dvol > 0, (buy - sell).cast("double") / dvol).alias("imbalance"),
        F.lit(None).cast("bigint").alias("first_trade_id"),
        F.lit(None).cast("bigint").alias("last_trade_id"),
        F.lit("klines").alias("source"),
        F.lit(None).cast("string").alias("event_kind"),
        F.lit(True).alias("is_complete"),
        F.current_timestamp().alias("created_at"),
    )


def backfill(spark, s: Settings, paths: list[Path], symbol: str | None = None) -> dict:
    """Insert the klines of `paths` that are not in silver.bars_1m yet; returns counts."""
    import pandas as pd
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from jobs.delta_io import ensure_table

    ensure_table(spark, tables.BARS, s)
    raw = pd.concat([read_klines(Path(p), symbol) for p in paths], ignore_index=True)
    if raw.empty:
        return {"rows_read": 0, "inserted": 0, "already_present": 0}
    # An explicit all-string schema spares the Arrow conversion a type-inference pass.
    schema = ", ".join(f"`{c}` string" for c in raw.columns)
    bars = to_bars(spark.createDataFrame(raw, schema)).dropDuplicates(list(schemas.BARS_KEY)).persist()
    try:
        is_bad = F.col("window_start").isNull() | F.col("close").isNull() | F.col("volume").isNull()
        # One pass fills the cache and yields both the bad-row count and the window bounds.
        # Bounds as epoch ms: collected timestamps would come back in the machine's local time.
        n_bad, lo, hi = bars.agg(F.count_if(is_bad), F.min(F.unix_millis("window_start")),
                                 F.max(F.unix_millis("window_start"))).first()
        if n_bad:
            raise ValueError(f"{n_bad} kline rows could not be read (first: {bars.where(is_bad).first()})")
        # The MERGE's own metrics, not table counts before and after (two full scans). Not
        # DESCRIBE HISTORY either: a MERGE that inserts nothing commits no version, so history(1)
        # would show the previous commit's numbers.
        metrics = (DeltaTable.forPath(spark, tables.BARS.path(s)).alias("t")
                   .merge(bars.alias("s"), "t.symbol = s.symbol AND t.window_start = s.window_start AND "
                          f"t.window_start BETWEEN timestamp_millis({lo}) AND timestamp_millis({hi})")
                   .whenNotMatchedInsertAll().execute().first())
    finally:
        bars.unpersist()
    inserted = int(metrics["num_inserted_rows"])
    return {"rows_read": len(raw), "inserted": inserted, "already_present": len(raw) - inserted}
