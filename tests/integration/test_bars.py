"""bronze.ticks -> silver.bars_1m and klines backfill, against the real broker, Spark and Delta."""
from __future__ import annotations

import csv
import gzip
from decimal import Decimal

import pandas as pd
import pytest

from tests.integration.test_ingest import AGG, WS, ingest_now, publish_files
from tickcast import tables

pytestmark = [pytest.mark.kafka, pytest.mark.spark]
KLINES = "klines_1m/BTCUSDT-1m-{}.csv.gz"
FIELDS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7, "trade_count": 8,
          "taker_buy_volume": 9, "taker_buy_quote_volume": 10}


def bars_now(spark, s):
    from jobs.runner import run

    return run(["bars"], s, available_now=True, spark=spark)


def bars(spark, s) -> dict:
    return {(r["symbol"], round(r["window_start"].timestamp() * 1000)): r.asDict()
            for r in spark.read.format("delta").load(tables.BARS.path(s)).collect()}


def klines(path) -> dict[int, list[str]]:
    with gzip.open(path, "rt") as f:
        return {int(r[0]): r for r in csv.reader(f)}


def test_reference_minutes_equal_binance_klines(spark, lane, shared_data):
    publish_files(lane, [shared_data / WS.format(8), shared_data / WS.format(9)])
    ingest_now(spark, lane)
    bars_now(spark, lane)
    got = bars(spark, lane)
    ref = {**klines(shared_data / KLINES.format("2024-08-08")), **klines(shared_data / KLINES.format("2024-08-09"))}
    first_complete = 1723161300000                      # 2024-08-08 23:55
    minutes = [first_complete + i * 60_000 for i in range(10)]
    rows = spark.read.format("delta").load(tables.BARS.path(lane))
    assert rows.count() == rows.select("symbol", "window_start").distinct().count()   # each minute once
    for m in minutes:
        b = got[("BTCUSDT", m)]
        assert b["source"] == "ticks" and b["is_complete"] is True, m
        for name, col in FIELDS.items():
            want = int(ref[m][col]) if name == "trade_count" else Decimal(ref[m][col])
            assert b[name] == want, (m, name, b[name], ref[m][col])
        assert b["taker_buy_volume"] + b["taker_sell_volume"] == b["volume"]
        assert b["vwap"] == pytest.approx(float(Decimal(ref[m][7]) / Decimal(ref[m][5])))
    partial = got[("BTCUSDT", first_complete - 60_000)]
    assert partial["is_complete"] is False
    # The last minute of the recording has not closed (no trade after it passed the watermark).
    assert max(k[1] for k in got) == minutes[-1]


def test_agg_trades_bars_equal_an_independent_pandas_computation(spark, lane, shared_data):
    publish_files(lane, [shared_data / AGG])
    ingest_now(spark, lane)
    bars_now(spark, lane)
    got = bars(spark, lane)
    df = pd.read_csv(shared_data / AGG, header=None,
                     names=["a", "p", "q", "f", "l", "T", "m", "M"], dtype={"p": str, "q": str})
    df["minute"] = (df["T"] // 1000) // 60_000 * 60_000
    df["p"], df["q"] = df["p"].map(Decimal), df["q"].map(Decimal)
    closed = sorted(df["minute"].unique())[:-1]             # the last minute never passed the watermark
    assert len(closed) == 12 and sorted(k[1] for k in got) == [int(m) for m in closed]
    for m in closed:
        g = df[df["minute"] == m].sort_values(["T", "a"])
        b = got[("BTCUSDT", int(m))]
        assert (b["open"], b["close"]) == (g["p"].iloc[0], g["p"].iloc[-1])
        assert (b["high"], b["low"]) == (max(g["p"]), min(g["p"]))
        assert b["volume"] == sum(g["q"]) and b["quote_volume"] == sum(g["p"] * g["q"])
        assert b["trade_count"] == int((g["l"] - g["f"] + 1).sum()) == int(g["l"].max() - g["f"].min() + 1)
        assert b["taker_buy_volume"] == sum(g.loc[g["m"] == False, "q"])  # noqa: E712 (pandas mask)
        assert (b["first_trade_id"], b["last_trade_id"]) == (int(g["f"].min()), int(g["l"].max()))
        assert b["is_complete"] is bool(m != closed[0])


def test_late_trade_is_counted_and_its_minute_is_unchanged(spark, lane, shared_data):
    from producers.publisher import Publisher
    from tickcast import events

    publish_files(lane, [shared_data / WS.format(8), shared_data / WS.format(9)])
    ingest_now(spark, lane)
    bars_now(spark, lane)
    before = bars(spark, lane)[("BTCUSDT", 1723161360000)]
    late = {"e": "trade", "E": 1723161365000, "s": "BTCUSDT", "t": 1, "p": "99999.00000000",
            "q": "5.00000000", "T": 1723161365000, "m": False, "M": True}   # 23:56:05, minutes late
    pub = Publisher(lane, "replay")
    pub.send(events.compact(late), b"BTCUSDT")
    pub.close()
    ingest_now(spark, lane)
    assert spark.read.format("delta").load(tables.TICKS.path(lane)).where("id = 1").count() == 1  # kept in bronze
    last = bars_now(spark, lane)
    assert bars(spark, lane)[("BTCUSDT", 1723161360000)] == before
    dropped = spark.read.format("delta").load(tables.STREAM_PROGRESS.path(lane)).where(
        f"run_id = '{last['bars']['runId']}'").agg({"rows_dropped_by_watermark": "sum"}).first()[0]
    assert dropped == 1


def test_a_minute_closes_by_its_trade_ids_before_the_watermark_but_not_across_a_gap(spark, lane, shared_data):
    import json

    from producers.publisher import Publisher
    from producers.sources import replay_records

    m = 1723161480000                                        # 23:58
    cutoff = m + 61_000                                      # up to 23:59:01: the 5 s watermark stays before 23:59
    recs = [r for r in replay_records([shared_data / WS.format(8)])
            if r.value is not None and r.trade_time_ms < cutoff]
    in_m = [i for i, r in enumerate(recs) if m <= r.trade_time_ms < m + 60_000]
    held = recs.pop(in_m[len(in_m) // 2])                    # a trade in the middle of 23:58 goes missing
    assert max(r.trade_time_ms for r in recs) >= m + 60_000  # trades of 23:59 are in
    pub = Publisher(lane, "replay")
    pub.publish(recs)
    pub.close()
    ingest_now(spark, lane)
    bars_now(spark, lane)
    ref = klines(shared_data / KLINES.format("2024-08-08"))
    got = bars(spark, lane)
    assert max(k[1] for k in got) == m - 60_000              # 23:57 closed (watermark); 23:58 waits for its gap

    pub = Publisher(lane, "replay")                          # the missing trade arrives, out of order
    pub.publish([held])
    pub.close()
    ingest_now(spark, lane)
    last = bars_now(spark, lane)
    got = bars(spark, lane)
    assert max(k[1] for k in got) == m                       # 23:58 closed by its ids, the watermark still behind
    b = got[("BTCUSDT", m)]
    for name, col in FIELDS.items():
        want = int(ref[m][col]) if name == "trade_count" else Decimal(ref[m][col])
        assert b[name] == want, (name, b[name], ref[m][col])
    assert b["is_complete"] is True and b["first_trade_id"] <= json.loads(held.value)["t"] <= b["last_trade_id"]
    dropped = spark.read.format("delta").load(tables.STREAM_PROGRESS.path(lane)).where(
        f"run_id = '{last['bars']['runId']}'").agg({"rows_dropped_by_watermark": "sum"}).first()[0]
    assert dropped == 0


def test_backfill_months_once_and_the_stream_runs_on_the_same_table(spark, lane, shared_data):
    from jobs.backfill import backfill

    files = [shared_data / KLINES.format(m) for m in ("2024-01", "2025-01", "2024-08-08")]
    r = backfill(spark, lane, files)
    assert r == {"rows_read": 44640 + 44640 + 1440, "inserted": 44640 + 44640 + 1440, "already_present": 0}
    table = spark.read.format("delta").load(tables.BARS.path(lane))
    per_month = {(r[0], r[1]): r[2] for r in table.groupBy(
        table.window_start.substr(1, 4), table.window_start.substr(6, 2)).count().collect()}
    assert per_month == {("2024", "01"): 44640, ("2025", "01"): 44640, ("2024", "08"): 1440}
    got = bars(spark, lane)
    for f in files:
        for ms, row in klines(f).items():
            ms = ms // 1000 if ms >= 10**14 else ms               # the 2025 file is in microseconds
            b = got[("BTCUSDT", ms)]
            assert b["source"] == "klines" and b["is_complete"] is True
            for name, col in FIELDS.items():
                assert b[name] == (int(row[col]) if name == "trade_count" else Decimal(row[col])), (ms, name)
    assert backfill(spark, lane, files[:1])["inserted"] == 0

    # The bars stream then runs on the same table: minutes backfilled stay as they were (klines),
    # the recording's minutes of 2024-08-09 (not backfilled) arrive from ticks.
    publish_files(lane, [shared_data / WS.format(8), shared_data / WS.format(9)])
    ingest_now(spark, lane)
    bars_now(spark, lane)
    after = bars(spark, lane)
    assert after[("BTCUSDT", 1723161300000)]["source"] == "klines"
    assert after[("BTCUSDT", 1723161600000)]["source"] == "ticks"
    assert len(after) == len(got) + 5                       # 00:00 .. 00:04 of 2024-08-09


def test_tables_read_by_delta_rs_also_after_optimize_and_vacuum(spark, lane, shared_data):
    from deltalake import DeltaTable

    publish_files(lane, [shared_data / WS.format(8)])
    ingest_now(spark, dataclasses_replace(lane, max_offsets_per_trigger=3000))
    bars_now(spark, lane)
    for t in (tables.TICKS, tables.BARS):
        path = t.path(lane)
        want = spark.read.format("delta").load(path).toPandas().sort_values(list(t.key)).reset_index(drop=True)
        spark.sql(f"OPTIMIZE delta.`{path}`")
        spark.sql("SET spark.databricks.delta.retentionDurationCheck.enabled = false")
        spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS")
        spark.sql("SET spark.databricks.delta.retentionDurationCheck.enabled = true")
        got = DeltaTable(path).to_pandas().sort_values(list(t.key)).reset_index(drop=True)
        assert len(got) == len(want) > 0
        for col in ("symbol", "id", "price", "quantity", "open", "close", "volume", "trade_count"):
            if col in want:
                assert [str(x) for x in got[col]] == [str(x) for x in want[col]], (t.name, col)


def dataclasses_replace(s, **kw):
    import dataclasses

    return dataclasses.replace(s, **kw)
