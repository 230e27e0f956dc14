"""An independent pandas computation of the features (rolling windows on a reindexed minute grid).

Written from the specification in `tickcast.features.SPEC`, not from its numpy code: pandas
`rolling` over a grid that is reindexed per segment, forward-filled, and padded in front.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

W, GAP = 120, 15


def _weights(alpha: float, n: int) -> np.ndarray:
    w = np.array([(1 - alpha) ** (n - 1 - i) for i in range(n)])
    return w / w.sum()


def expected(bars: pd.DataFrame) -> pd.DataFrame:
    """bars: symbol, window_ms, close, volume, quote_volume, trade_count, imbalance, vwap (floats)."""
    out = []
    for sym, g in bars.sort_values("window_ms").groupby("symbol"):
        minute = g["window_ms"].to_numpy() // 60_000
        seg = np.concatenate([[0], np.cumsum(np.diff(minute) - 1 > GAP)])
        for _, s in g.assign(minute=minute, seg=seg).groupby("seg"):
            grid = s.set_index("minute").reindex(range(int(s.minute.min()), int(s.minute.max()) + 1))
            grid["has"] = grid["close"].notna()
            grid["close"] = grid["close"].ffill()
            grid["vwap"] = grid["vwap"].fillna(grid["close"])
            for c in ("volume", "quote_volume", "trade_count", "imbalance"):
                grid[c] = grid[c].fillna(0.0)
            pad = pd.DataFrame({"close": grid["close"].iloc[0], "vwap": grid["close"].iloc[0], "volume": 0.0,
                                "quote_volume": 0.0, "trade_count": 0.0, "imbalance": 0.0, "has": False},
                               index=range(int(grid.index[0]) - (W - 1), int(grid.index[0])))
            x = pd.concat([pad, grid])
            lc = np.log(x["close"])
            r = lc.diff()
            e = pd.DataFrame(index=x.index)
            for k in (1, 5, 15, 60):
                e[f"ret_{k}"] = lc - lc.shift(k)
            e["rv_15"] = np.sqrt((r ** 2).rolling(15).sum())
            e["rv_60"] = np.sqrt((r ** 2).rolling(60).sum())
            w42 = _weights(1 / 14, 42)
            gain = r.clip(lower=0).rolling(42).apply(lambda a: float(np.dot(a, w42)), raw=True)
            loss = (-r).clip(lower=0).rolling(42).apply(lambda a: float(np.dot(a, w42)), raw=True)
            e["rsi_14"] = np.where(gain + loss > 0, gain / (gain + loss), 0.5)
            ema = lambda span, n: x["close"].rolling(n).apply(  # noqa: E731
                lambda a: float(np.dot(a, _weights(2 / (span + 1), n))), raw=True)
            macd = (ema(12, 36) - ema(26, 78)) / x["close"]
            e["macd"] = macd
            e["macd_signal"] = macd.rolling(27).apply(lambda a: float(np.dot(a, _weights(0.2, 27))), raw=True)
            e["macd_hist"] = e["macd"] - e["macd_signal"]
            m20 = x["close"].rolling(20).mean()
            sd20 = x["close"].rolling(20).apply(lambda a: float(np.std(a)), raw=True)
            e["bb_pctb_20"] = np.where(sd20 > 1e-10 * m20, (x["close"] - (m20 - 2 * sd20)) / (4 * sd20), 0.5)
            dv = np.log1p(x["quote_volume"])
            mu = dv.rolling(60).mean()
            sd = dv.rolling(60).apply(lambda a: float(np.std(a)), raw=True)
            e["volume_z_60"] = np.where(sd > 1e-9, (dv - mu) / sd, 0.0)
            e["imbalance"] = x["imbalance"]
            e["imbalance_mean_15"] = x["imbalance"].rolling(15).mean()
            e["vwap_dist_1"] = lc - np.log(x["vwap"])
            qv, v = x["quote_volume"].rolling(60).sum(), x["volume"].rolling(60).sum()
            e["vwap_dist_60"] = np.where(v > 0, lc - np.log(qv / v.where(v > 0, 1.0)), 0.0)
            e["intensity"] = np.log1p(x["trade_count"])
            e["intensity_ratio_60"] = np.log((x["trade_count"] + 1) / (x["trade_count"].rolling(60).mean() + 1))
            ts = pd.to_datetime(x.index * 60_000, unit="ms", utc=True)
            mod = ts.hour * 60 + ts.minute
            e["tod_sin"], e["tod_cos"] = np.sin(2 * np.pi * mod / 1440), np.cos(2 * np.pi * mod / 1440)
            e["dow_sin"], e["dow_cos"] = np.sin(2 * np.pi * ts.weekday / 7), np.cos(2 * np.pi * ts.weekday / 7)
            e["minutes_in_segment"] = np.arange(len(x)) - (W - 1) + 1
            e = e[x["has"].to_numpy()]
            e.insert(0, "window_ms", e.index.to_numpy() * 60_000)
            e.insert(0, "symbol", sym)
            out.append(e.reset_index(drop=True))
    return pd.concat(out, ignore_index=True)
