"""Figure builders on real Binance 1-minute klines (../shared): candles, resampling, overlays, scores."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import figures


def klines(path) -> pd.DataFrame:
    raw = pd.read_csv(path, header=None, usecols=range(6), names=["t", "open", "high", "low", "close", "volume"])
    t = raw["t"].astype("int64")
    t = np.where(t >= 10**14, t // 1000, t)          # µs files since 2025
    return pd.DataFrame({"window_start": pd.to_datetime(t, unit="ms", utc=True),
                         **{c: raw[c].astype(float) for c in ("open", "high", "low", "close", "volume")}})


@pytest.fixture(scope="module")
def month(shared_data) -> pd.DataFrame:
    return klines(shared_data / "klines_1m" / "BTCUSDT-1m-2024-01.csv.gz")


def pandas_candles(bars: pd.DataFrame, minutes: int) -> pd.DataFrame:
    r = (bars.set_index("window_start").resample(f"{minutes}min", origin="epoch", label="left", closed="left")
         .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}))
    return r[bars.set_index("window_start")["close"].resample(f"{minutes}min", origin="epoch").count() > 0]


def test_candle_width_keeps_the_browser_under_1500_candles():
    assert figures.candle_minutes(60) == 1 and figures.candle_minutes(1440) == 1
    assert figures.candle_minutes(10080) == 10            # a week: 1,008 ten-minute candles
    for span in (60, 360, 1440, 1441, 4000, 10080, 43200, 525600):
        m = figures.candle_minutes(span)
        assert -(-span // m) <= figures.MAX_CANDLES
        smaller = [c for c in figures.CANDLE_MINUTES if c < m]
        assert not smaller or -(-span // smaller[-1]) > figures.MAX_CANDLES


def test_a_week_resampled_equals_a_pandas_resample_of_the_same_rows(month):
    end = month["window_start"].max()
    week = figures.in_range(month, "window_start", end, figures.RANGES["1w"])
    assert len(week) == 10080
    m = figures.candle_minutes(figures.RANGES["1w"])
    ours = figures.resample(week.sample(frac=1, random_state=1), m)          # any row order
    ref = pandas_candles(week, m)
    assert len(ours) == len(ref) == 1008
    np.testing.assert_array_equal(ours["window_start"].to_numpy(), ref.index.to_numpy())
    for c in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(ours[c].to_numpy(), ref[c].to_numpy(), err_msg=c)
    np.testing.assert_allclose(ours["volume"].to_numpy(), ref["volume"].to_numpy(), rtol=1e-12)
    assert ours["close"].iloc[-1] == week.sort_values("window_start")["close"].iloc[-1]


def test_gaps_leave_no_empty_candles(month):
    day = month.iloc[:1440]
    holey = day.drop(day.index[100:250])                  # 150 minutes without trades
    ours = figures.resample(holey, 15)
    ref = pandas_candles(holey, 15)
    assert len(ours) == len(ref) and not ours[["open", "close"]].isna().any().any()
    row = ours[ours["window_start"] == ref.index[3]].iloc[0]
    assert (row["open"], row["high"], row["low"], row["close"]) == tuple(ref.iloc[3][["open", "high", "low", "close"]])


def test_market_figure_holds_every_candle_and_the_last_close(month):
    day = figures.in_range(month, "window_start", month["window_start"].max(), figures.RANGES["1d"])
    candles = figures.resample(day, figures.candle_minutes(figures.RANGES["1d"]))
    fig = figures.market_figure(candles, {}, "BTCUSDT", 1, "BTCUSDT-1d")
    c = fig["data"][0]
    close = figures.values(c["close"])
    assert c["type"] == "candlestick" and len(close) == 1440 and len(figures.values(c["x"])) == 1440
    assert close[-1] == day["close"].iloc[-1] and fig["layout"]["uirevision"] == "BTCUSDT-1d"
    assert figures.values(c["x"])[-1] == day["window_start"].iloc[-1].value // 10**6     # epoch ms
    import json

    json.dumps(fig)                                           # plain JSON: no Plotly objects


def predictions_on(bars: pd.DataFrame, horizon: int):
    """Predictions with a fixed rule on real bars, and their outcomes (the outcome job's hit rule)."""
    b = bars.sort_values("window_start").reset_index(drop=True)
    ret = np.log(b["close"].shift(-horizon) / b["close"])
    prob = np.where(b["close"].diff().fillna(0) > 0, 0.6, 0.4)     # momentum-like rule
    preds = pd.DataFrame({"window_start": b["window_start"], "horizon": horizon, "model_version": "1",
                          "prob_up": prob, "prediction_time": b["window_start"] + pd.Timedelta(seconds=5)})
    known = ret.notna()
    hit = pd.array(np.where(ret > 0, prob > 0.5, prob <= 0.5), dtype="boolean")
    hit[(ret == 0).to_numpy() | ~known.to_numpy()] = pd.NA
    outcomes = pd.DataFrame({"window_start": b["window_start"], "target_time": b["window_start"] +
                             pd.Timedelta(minutes=horizon), "horizon": horizon, "model_version": "1", "prob_up": prob,
                             "realized_return": ret, "hit": hit, "climatology_prob_up": 0.5,
                             "momentum_prob_up": prob, "climatology_hit": pd.array([pd.NA] * len(b), "boolean"),
                             "momentum_hit": hit, "after_training_end": True, "made_before_outcome": True})[known]
    return preds, outcomes


def test_prediction_overlay_marks_right_and_wrong(month):
    bars = month.iloc[:600]
    preds, outcomes = predictions_on(bars, 5)
    pts = figures.prediction_points(preds, outcomes.iloc[:-20], 1)[5]
    assert len(pts) == 600
    known = outcomes.set_index("window_start")["hit"]
    first = pts.iloc[10]
    assert first["right"] == float(bool(known.loc[first["window_start"]]))
    assert np.isnan(pts["right"].iloc[-1])                   # its outcome is not known yet
    wide = figures.prediction_points(preds, outcomes, 10)[5]
    assert len(wide) == 60
    sel = outcomes[(outcomes["window_start"] >= wide["window_start"].iloc[0])
                   & (outcomes["window_start"] < wide["window_start"].iloc[0] + pd.Timedelta(minutes=10))]
    h = sel["hit"].dropna().astype(bool)
    assert wide["right"].iloc[0] == pytest.approx(h.mean())
    assert wide["prob_up"].iloc[0] == pytest.approx(preds["prob_up"].iloc[:10].mean())


def test_a_pause_in_the_data_breaks_the_volume_and_p_up_lines(month):
    """A stopped pipeline leaves minutes without bars or predictions: the P(up) line breaks there (a
    NaN point a minute after the last one before the pause) and the stepped volume area drops to 0,
    instead of either being drawn across it; the candles and every real point stay as they are."""
    day = month.iloc[:300]
    holey = day.drop(day.index[100:160]).reset_index(drop=True)       # an hour with nothing
    preds, outcomes = predictions_on(holey, 1)
    candles = figures.resample(holey, 1)
    fig = figures.market_figure(candles, figures.prediction_points(preds, outcomes, 1), "BTCUSDT", 1, "u")
    c, vol, overlay = fig["data"]
    assert len(figures.values(c["x"])) == len(holey)                  # candles: no gap points
    for trace, y, fill in ((vol, holey["volume"], 0.0), (overlay, preds["prob_up"], np.nan)):
        x, v = figures.values(trace["x"]), figures.values(trace["y"])
        assert len(x) == len(y) + 1
        gap = int(np.flatnonzero(x == holey["window_start"].iloc[99].value // 10**6 + 60_000)[0])
        assert gap == 100 and (np.isnan(v[gap]) if np.isnan(fill) else v[gap] == fill)
        np.testing.assert_array_equal(np.delete(v, gap), y.to_numpy(float))
    assert len(figures.values(overlay["marker"]["color"])) == len(figures.values(overlay["x"]))
    # No pause, no extra point.
    x, v = figures.broken_at_gaps(np.arange(5) * 60_000.0, 60_000, np.ones(5))
    assert len(x) == 5 and not np.isnan(v).any()


def test_rolling_and_cumulative_scores_equal_direct_counts(month):
    bars = month.iloc[:3000]
    _, outcomes = predictions_on(bars, 1)
    o = figures.counted(outcomes)
    r = figures.rolling_scores(o, "60min", max_points=10_000)
    last = o[o["target_time"] > o["target_time"].max() - pd.Timedelta(minutes=60)]
    h = last["hit"].dropna().astype(bool)
    assert r["hit"].iloc[-1] == pytest.approx(h.mean()) and r["n"].iloc[-1] == len(h)
    assert r["hit_lo"].iloc[-1] < h.mean() < r["hit_hi"].iloc[-1]
    nz = last[last["realized_return"] != 0]
    brier = ((nz["prob_up"] - (nz["realized_return"] > 0)) ** 2).mean()
    assert r["brier"].iloc[-1] == pytest.approx(brier)
    assert r["brier_lo"].iloc[-1] < brier < r["brier_hi"].iloc[-1]
    assert np.isnan(r["climatology_hit"].iloc[-1])          # no climatology hits in this frame
    c = figures.cumulative_hits(o, max_points=10_000)
    allh = o["hit"].dropna().astype(bool)
    assert c["model"].iloc[-1] == pytest.approx(allh.mean())
    cal = figures.calibration(o)
    assert set(cal["bin"]) == {4, 6}                         # P(up) is 0.4 or 0.6
    up = (nz := o[o["realized_return"] != 0])[nz["prob_up"] == 0.6]["realized_return"].gt(0).mean()
    assert cal.set_index("bin").loc[6, "observed"] == pytest.approx(up)


def test_freshness_from_one_minute_files_only():
    t = pd.Timestamp("2026-01-01 00:00", tz="UTC")
    files = pd.DataFrame({
        "path": ["a", "b", "c", "d"],
        "modification_time": [t + pd.Timedelta(seconds=63), t + pd.Timedelta(seconds=125),
                              t + pd.Timedelta(seconds=127), t + pd.Timedelta(hours=1)],
        "min.window_start": [t, t + pd.Timedelta(minutes=1), t + pd.Timedelta(minutes=1), t],
        "max.window_start": [t, t + pd.Timedelta(minutes=1), t + pd.Timedelta(minutes=1), t + pd.Timedelta(minutes=30)],
    })
    c = figures.stage_commits(files)
    f = figures.freshness({"bars": c})
    assert f["bars"].tolist() == [3.0, 7.0]                 # the later of two files counts; "d" spans 30 min
    recent = figures.freshness({"bars": figures.stage_commits(files, since=t + pd.Timedelta(minutes=1))})
    assert recent["bars"].tolist() == [7.0]                 # the header's recent minutes only


def test_model_scores_markers_only_on_the_outcomes_time_range(month):
    _, outcomes = predictions_on(month.iloc[:600], 1)
    r = figures.rolling_scores(figures.counted(outcomes))
    t_end = outcomes["target_time"].max()
    scores = pd.DataFrame({"computed_at": [t_end - pd.Timedelta(minutes=5), t_end + pd.Timedelta(days=70)],
                           "accuracy": [0.55, 0.6], "brier": [0.24, 0.25]})
    fig = figures.rolling_figure(r, "hit", "t", "u", scores)
    marks = [d for d in fig["data"] if d.get("mode") == "markers"]
    assert len(marks) == 1 and figures.values(marks[0]["y"]).tolist() == [0.55]   # a replay's wall-clock rows left out
