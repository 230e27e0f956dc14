"""bars.bar_rows (the driver's aggregate of a few minutes) equals Spark's aggregate + to_bars, value for value."""
import random
from decimal import Decimal

import pyarrow as pa

from jobs import bars
from tests.expected import agg_trades, recording_trades
from tickcast import schemas

from tickcast.timeunits import MINUTE_MS as MIN


def _arrow(rows: list[dict]) -> pa.Table:
    """Ticks (expected.py's dicts) -> the bronze columns bars reads, typed as bronze.ticks has them."""
    bronze = schemas.TICKS.arrow_type()
    cols = {c: [] for c in bars.AGGREGATE_INPUT}
    for r in rows:
        for c in bars.AGGREGATE_INPUT:
            if c == "trade_time":
                cols[c].append(r["trade_ms"] * 1000)
            elif c == "quote_quantity":
                cols[c].append(r["price"] * r["quantity"])
            else:
                cols[c].append(r[c])
    fields = [bronze.field(c) for c in bars.AGGREGATE_INPUT]
    return pa.table({f.name: pa.array(cols[f.name], pa.int64() if f.name == "trade_time" else f.type)
                     .cast(f.type) for f in fields})


def _spark_rows(spark, arrow: pa.Table) -> list[dict]:
    from pyspark.sql.types import StructType

    bronze = schemas.TICKS.spark_type()
    df = spark.createDataFrame(arrow, StructType([bronze[c] for c in bars.AGGREGATE_INPUT]))
    return bars._collect(bars.to_bars(bars.aggregate(df)))


def _key(r):
    return (r["symbol"], r["event_kind"], r["window_ms"])


def _assert_equal(spark, rows: list[dict]):
    arrow = _arrow(rows)
    ours = sorted(bars.bar_rows(arrow), key=_key)
    theirs = sorted(_spark_rows(spark, arrow), key=_key)
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys(), (a.keys() ^ b.keys())
        for k in a:
            assert a[k] == b[k] and type(a[k]) is type(b[k]), (k, a[k], b[k], _key(a))
    return ours


def _synthetic(seed: int = 3) -> list[dict]:
    """Two symbols over three minutes: same-ms trades listed out of id order, an id gap, all-buy and
    all-sell minutes, aggTrades beside trades of one symbol, a minute of one trade."""
    rnd = random.Random(seed)
    rows = []
    t0 = 1_722_470_400_000
    for sym, n in (("AAAUSDT", 300), ("BBBUSDT", 120)):
        tid = 1000
        for i in range(n):
            tid += 1 if i != 50 else 3      # a gap of two ids
            ms = t0 + int(i * 3 * MIN / n) + (0 if i % 7 else -1)
            side = True if sym == "BBBUSDT" and ms < t0 + MIN else (False if ms >= t0 + 2 * MIN and sym == "BBBUSDT"
                                                                     else rnd.random() < 0.5)
            rows.append({"symbol": sym, "event_kind": "trade", "id": tid, "first_trade_id": tid, "last_trade_id": tid,
                         "price": Decimal(rnd.randint(100_000, 200_000)) / 100,
                         "quantity": Decimal(rnd.randint(1, 10**9)) / 10**8,
                         "trade_ms": ms, "is_buyer_maker": side})
    agg = 500
    for i in range(40):
        n = rnd.randint(1, 4)
        rows.append({"symbol": "AAAUSDT", "event_kind": "aggTrade", "id": agg, "first_trade_id": 7000 + 4 * i,
                     "last_trade_id": 7000 + 4 * i + n - 1, "price": Decimal("1500.25"),
                     "quantity": Decimal("0.00000001") * (i + 1), "trade_ms": t0 + i * 4000, "is_buyer_maker": i % 3 == 0})
        agg += 1
    rows.append({"symbol": "CCCUSDT", "event_kind": "trade", "id": 5, "first_trade_id": 5, "last_trade_id": 5,
                 "price": Decimal("0.00012345"), "quantity": Decimal("99999999.12345678"), "trade_ms": t0 + 5,
                 "is_buyer_maker": False})
    rnd.shuffle(rows)
    return rows


def test_equal_to_spark_on_synthetic_minutes(spark):
    out = _assert_equal(spark, _synthetic())
    one = [r for r in out if r["symbol"] == "CCCUSDT"][0]
    assert (one["open"], one["close"], one["trade_count"], one["imbalance"]) == (Decimal("0.00012345"),
                                                                                Decimal("0.00012345"), 1, 1.0)
    assert {r["gapless"] for r in out if r["symbol"] == "AAAUSDT" and r["event_kind"] == "trade"} == {True, False}


def test_equal_to_spark_on_real_trades_and_aggtrades(spark, shared_data):
    rows = recording_trades(shared_data / "ticks" / "ws_recordings" / "ethusdt_20240809.gz")
    rows += agg_trades(shared_data / "ticks" / "aggTrades" / "BTCUSDT-aggTrades-2026-01-01-first5000.csv.gz")
    out = _assert_equal(spark, rows)
    assert len(out) >= 5


def test_empty_ticks_give_no_rows():
    assert bars.bar_rows(_arrow([])) == []
