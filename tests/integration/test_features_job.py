"""Job `features` on real Spark + Delta: stream rows = batch recomputation = independent pandas, across
a gap, a restart and late bars (real BTCUSDT klines from ../shared)."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tests.expected_features import expected
from tickcast import features, lake, tables

pytestmark = pytest.mark.spark


def _klines_file(path, rows):
    with gzip.open(path, "wt") as f:
        f.writelines(",".join(r) + "\n" for r in rows)
    return path


def _table_rows(s) -> pd.DataFrame:
    t = lake.read(tables.FEATURES, s)
    df = t.drop(["window_start"]).to_pandas()
    df.insert(1, "window_ms", lake.to_ms(t["window_start"]))
    return df.sort_values(["symbol", "window_ms"]).reset_index(drop=True)


def test_stream_equals_batch_and_pandas_across_gap_restart_and_late_bars(spark, lake_lane, shared_data, tmp_path):
    from jobs.backfill import backfill
    from jobs.runner import run
    from tickcast.training import read_bars

    s = lake_lane
    src = shared_data / "klines_1m" / "BTCUSDT-1m-2024-01.csv.gz"
    with gzip.open(src, "rt") as f:
        rows = [line.strip().split(",") for _, line in zip(range(3000), f)]
    short_gap, long_gap = set(range(1000, 1010)), set(range(2000, 2040))   # 10 minutes bridged, 40 reset
    keep = [r for i, r in enumerate(rows) if i not in short_gap | long_gap]
    first, second = [r for r in keep if rows.index(r) < 1600], [r for r in keep if rows.index(r) >= 1600]

    backfill(spark, s, [_klines_file(tmp_path / "BTCUSDT-1m-a.csv.gz", first)])
    run(["features"], s, available_now=True, spark=spark)
    backfill(spark, s, [_klines_file(tmp_path / "BTCUSDT-1m-b.csv.gz", second)])
    run(["features"], s, available_now=True, spark=spark)            # a restart from the checkpoint

    got = _table_rows(s)
    bars = read_bars(s)
    assert len(got) == len(bars) == len(keep)
    assert got.duplicated(["symbol", "window_ms", "feature_version"]).sum() == 0
    assert (got["feature_version"] == features.feature_version()).all()
    batch = features.compute(bars)
    assert (got["window_ms"].to_numpy() == batch["window_ms"].to_numpy()).all()
    np.testing.assert_allclose(got[list(features.FEATURES)].to_numpy(), batch[list(features.FEATURES)].to_numpy(),
                               rtol=0, atol=1e-9)
    exp = expected(bars)
    for name in features.FEATURES:
        np.testing.assert_allclose(got[name].to_numpy(), exp[name].to_numpy(), rtol=0, atol=1e-9, err_msg=name)
    seg = got.set_index(got["window_ms"] // 60_000 - int(rows[0][0]) // 60_000)["minutes_in_segment"]
    assert seg[1010] == 1011 and seg[2040] == 1                       # bridged vs reset
    assert got["close"].tolist() == [float(r[4]) for r in keep]

    # The minutes of the short gap arrive late (backfilled after the stream passed them): counted, not applied.
    backfill(spark, s, [_klines_file(tmp_path / "BTCUSDT-1m-c.csv.gz", [rows[i] for i in sorted(short_gap)])])
    run(["features"], s, available_now=True, spark=spark)
    late = lake.read(tables.LATE_BARS, s).to_pandas()
    assert sorted(lake.to_ms(lake.read(tables.LATE_BARS, s)["window_start"]).tolist()) == \
        sorted(int(rows[i][0]) for i in short_gap)
    assert set(late["symbol"]) == {"BTCUSDT"} and set(late["query_name"]) == {"features"}
    after = _table_rows(s)
    pd.testing.assert_frame_equal(after, got)

    # The stream's batches were past the table's end: appended (idempotent), not merged.
    from delta.tables import DeltaTable

    ops = [r["operation"] for r in DeltaTable.forPath(spark, tables.FEATURES.path(s)).history()
           .orderBy("version").collect()]
    assert "MERGE" not in ops and ops.count("WRITE") >= 2, ops

    # A second symbol's bars for minutes the first already has (as when its minute closes a batch
    # later): newer than every row of their own symbol, so appended too, and computed on their own.
    eth = rows[:120]
    backfill(spark, s, [_klines_file(tmp_path / "ETHUSDT-1m-a.csv.gz", eth)])
    run(["features"], s, available_now=True, spark=spark)
    ops = [r["operation"] for r in DeltaTable.forPath(spark, tables.FEATURES.path(s)).history()
           .orderBy("version").collect()]
    assert "MERGE" not in ops, ops
    after = _table_rows(s)
    got_eth = after[after["symbol"] == "ETHUSDT"]
    assert got_eth["window_ms"].tolist() == [int(r[0]) for r in eth]
    np.testing.assert_allclose(got_eth[list(features.FEATURES)].to_numpy(),
                               got[list(features.FEATURES)].to_numpy()[:len(eth)], rtol=0, atol=1e-9)

    # A new checkpoint replays every bar over the table: the batches that reach rows already there
    # go through the insert-only MERGE, so nothing is added twice; only the minutes that were late
    # (now in order) are new.
    import dataclasses

    run(["features"], dataclasses.replace(s, checkpoint_uri=str(tmp_path / "fresh-checkpoints")),
        available_now=True, spark=spark)
    replayed = _table_rows(s)
    assert not replayed.duplicated(["symbol", "window_ms", "feature_version"]).any()
    assert len(replayed) == len(after) + len(short_gap)
    kept = replayed.merge(after[["symbol", "window_ms"]], on=["symbol", "window_ms"])
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), after.reset_index(drop=True))
    assert "MERGE" in [r["operation"] for r in DeltaTable.forPath(spark, tables.FEATURES.path(s)).history().collect()]
