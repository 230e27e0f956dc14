"""The history columns of a feature row (what the Conv1D family sees), against pandas shifts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tickcast import features as F

from tickcast.timeunits import MINUTE_MS as MIN


def test_history_columns_are_the_last_minutes_newest_first():
    rng = np.random.default_rng(5)
    minutes = np.arange(400)
    minutes = minutes[(minutes < 200) | (minutes > 204)]          # a 5-minute hole: "no trading" inside a segment
    n = len(minutes)
    bars = pd.DataFrame({"symbol": "X", "window_ms": minutes * MIN,
                         "close": 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), "volume": rng.uniform(1, 5, n),
                         "quote_volume": rng.uniform(100, 500, n), "trade_count": 10.0,
                         "imbalance": rng.uniform(-1, 1, n), "vwap": 100.0})
    out = F.compute(bars).set_index("window_ms")
    # The same minutes on a dense grid, filled the way the specification says (close carried, volume 0).
    grid = bars.set_index(bars["window_ms"] // MIN).reindex(range(400))
    close = grid["close"].ffill()
    r = np.log(close).diff()
    dv = np.log1p(grid["quote_volume"].fillna(0.0))
    imb = grid["imbalance"].fillna(0.0)
    for t in (180, 203, 206, 260, 399):
        if t not in grid.index or np.isnan(grid.loc[t, "close"]):
            continue
        row = out.loc[t * MIN]
        for k in (0, 1, 4, 13, F.HISTORY_BARS - 1):
            assert abs(row[f"hr_{k}"] - r[t - k]) < 1e-12
            assert abs(row[f"hi_{k}"] - imb[t - k]) < 1e-12
            # relative to the mean of the 60 minutes ending at t (not at t-k)
            assert abs(row[f"hv_{k}"] - (dv[t - k] - dv[t - 59:t + 1].mean())) < 1e-9
        assert row["hr_0"] == row["ret_1"] and row["hi_0"] == row["imbalance"]
    assert list(F.COLUMNS) == list(F.FEATURES) + list(F.HISTORY)
    assert len(F.HISTORY) == len(F.HISTORY_CHANNELS) * F.HISTORY_BARS


def test_the_history_is_part_of_the_feature_version():
    spec = F.HISTORY_SPEC
    try:
        F.HISTORY_SPEC = spec[:-1]
        other = F.feature_version()
    finally:
        F.HISTORY_SPEC = spec
    assert other != F.feature_version()
