"""Simulated history: the simulator's trades over N past minutes -> silver.bars_1m, in one batch.

For training offline (no exchange, no klines) and for tests of the training gate: the trades go
through the bars job's own transforms (`bars.aggregate`, `bars.to_bars`, `BarWriter.write`), so the bars
are what the stream would have built from the same ticks; symbols carry the simulator's `-SIM` /
`-SIMSIG` suffix. Insert-only like every bar write.
"""
from __future__ import annotations

import numpy as np

from jobs import bars
from tickcast.lake.write import ensure_table
from tickcast import schemas, tables
from tickcast.settings import Settings


def end_at(df, end_prices: dict[str, float]):
    """The simulated trades with each symbol's prices scaled so its last trade is at `end_prices[base]`
    (on the same tick grid): the history then ends where a simulator started at that price goes
    on. Returns are unchanged (up to the tick rounding), and so are the features."""
    from tickcast.sources.simulator import profile, sim_base  # deferred: heavy (imports pandas, pyarrow)

    df = df.copy()
    for name in df["symbol"].cat.categories:
        base = sim_base(name)
        rows = (df["symbol"] == name).to_numpy()
        if base in end_prices and rows.any():
            last = df.loc[rows, "price"].to_numpy()[-1]
            df.loc[rows, "price"] = np.round(df.loc[rows, "price"].to_numpy() * (end_prices[base] / last),
                                             profile(base).tick_decimals)
    return df


def ticks_frame(spark, cfg, minutes: int, end_prices: dict[str, float] | None = None):
    """`minutes` of simulated trades as a DataFrame with the bronze.ticks columns the bars need
    (ending at `end_prices`, see `end_at`)."""
    import pandas as pd
    from pyspark.sql import functions as F

    from tickcast.sources.simulator import simulate_frame  # deferred: heavy (imports pandas, pyarrow)

    df = simulate_frame(cfg, minutes)
    if end_prices:
        df = end_at(df, end_prices)
    pdf = pd.DataFrame({"symbol": df["symbol"].astype(str).to_numpy(), "id": df["trade_id"].to_numpy(np.int64),
                        "time_ms": df["time_ms"].to_numpy(np.int64),
                        # The nearest doubles to the simulator's 0.01 / 0.00001 grids: the cast to
                        # DECIMAL(24,8) rounds them back to the exact decimal.
                        "price": df["price"].to_numpy(float), "quantity": df["qty"].to_numpy(float),
                        "is_buyer_maker": df["buyer_maker"].to_numpy(bool)})
    sdf = spark.createDataFrame(pdf)
    price = F.col("price").cast(schemas.PRICE)
    qty = F.col("quantity").cast(schemas.PRICE)
    return sdf.select(
        "symbol", F.lit("trade").alias("event_kind"), "id",
        F.col("id").alias("first_trade_id"), F.col("id").alias("last_trade_id"),
        price.alias("price"), qty.alias("quantity"), (price * qty).cast(schemas.QUOTE).alias("quote_quantity"),
        F.timestamp_millis("time_ms").alias("trade_time"), "is_buyer_maker")


def run(spark, s: Settings, cfg, minutes: int, end_prices: dict[str, float] | None = None) -> int:
    """Write `minutes` of simulated bars (ending at `end_prices`, see `end_at`); returns the number
    of bars written (insert-only)."""
    ensure_table(spark, tables.BARS, s)
    before = spark.read.format("delta").load(tables.BARS.path(s)).count()
    agg = bars.to_bars(bars.aggregate(ticks_frame(spark, cfg, minutes, end_prices))).persist()
    try:
        bars.BarWriter(s).write(spark, agg)
    finally:
        agg.unpersist()
    return spark.read.format("delta").load(tables.BARS.path(s)).count() - before
