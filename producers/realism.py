"""Stylized-fact measurements over a trade frame (simulate_frame's columns, or real trades).

Columns used: symbol, trade_id, time_ms, price, qty, buyer_maker. Minutes are epoch-aligned
(time_ms // 60000). Each statistic is computed per symbol and then pooled (weighted by its
number of observations), so symbols with very different price levels never share one series.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tickcast.timeunits import MINUTE_MS

LAGS = 10


def _by_symbol(df: pd.DataFrame):
    """Yield (symbol, frame in trade order) per symbol; trade order = (time_ms, trade_id)."""
    for sym, idx in df.groupby("symbol", observed=True, sort=True).indices.items():
        g = df.iloc[idx]
        t = g["time_ms"].to_numpy()
        i = g["trade_id"].to_numpy()
        ordered = len(t) < 2 or bool(np.all((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (i[1:] > i[:-1]))))
        if not ordered:  # simulator output is already ordered; real data may not be
            g = g.iloc[np.lexsort((i, t))]
        yield sym, g


def _minute_table(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(minute index, last log price, qty imbalance) per minute with trades, for one symbol."""
    minute = g["time_ms"].to_numpy() // MINUTE_MS
    last = np.flatnonzero(np.r_[minute[1:] != minute[:-1], True])
    first = np.r_[0, last[:-1] + 1]
    qty = g["qty"].to_numpy(dtype=np.float64)
    signed = np.where(g["buyer_maker"].to_numpy(dtype=bool), -qty, qty)  # taker buy = maker is seller
    tot = np.add.reduceat(qty, first) if len(qty) else np.empty(0)
    net = np.add.reduceat(signed, first) if len(qty) else np.empty(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        imb = np.where(tot > 0, net / tot, 0.0)
    return minute[last], np.log(g["price"].to_numpy(dtype=np.float64)[last]), imb


def _concat(parts: list[pd.Series], name: str) -> pd.Series:
    if not parts:
        return pd.Series([], dtype=np.float64, name=name,
                         index=pd.MultiIndex.from_arrays([[], []], names=["symbol", "minute_ms"]))
    return pd.concat(parts).rename(name)


def minute_returns(df: pd.DataFrame) -> pd.Series:
    """1-minute log returns of the last price per minute, per symbol, consecutive minutes only.

    Index: (symbol, minute_ms) where minute_ms is the start of the minute the return ends in.
    """
    parts = []
    for sym, g in _by_symbol(df):
        minute, logp, _ = _minute_table(g)
        ok = np.flatnonzero(np.diff(minute) == 1) + 1
        parts.append(pd.Series(logp[ok] - logp[ok - 1],
                               index=pd.MultiIndex.from_arrays(
                                   [np.full(len(ok), sym, dtype=object), minute[ok] * MINUTE_MS],
                                   names=["symbol", "minute_ms"])))
    return _concat(parts, "log_return")


def _acf(x: np.ndarray, lags: int) -> list[float]:
    """ACF of a series on a regular grid with NaN holes: lag-k products over pairs both present,
    normalised by the overall variance (the usual estimator when there are no holes)."""
    ok = np.isfinite(x)
    if not ok.any():
        return [float("nan")] * lags
    xc = np.where(ok, x - np.mean(x[ok]), 0.0)
    var = float(np.sum(xc * xc)) / max(int(ok.sum()), 1)
    out = []
    for k in range(1, lags + 1):
        both = ok[k:] & ok[:-k]
        n = int(both.sum())
        out.append(float(np.sum(xc[k:] * xc[:-k])) / n / var if n and var > 0 else float("nan"))
    return out


def _excess_kurtosis(x: np.ndarray) -> float:
    xc = x - x.mean()
    m2 = float(np.mean(xc * xc))
    return float(np.mean(xc**4)) / (m2 * m2) - 3.0 if m2 > 0 else float("nan")


def _pool(values: list[float], weights: list[int]) -> float:
    pairs = [(v, w) for v, w in zip(values, weights) if w > 0 and math.isfinite(v)]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else float("nan")


def realism_report(df: pd.DataFrame) -> dict:
    """Stylized facts, pooled over symbols; `per_symbol` holds the unpooled values.

    kurtosis_1m: EXCESS kurtosis of 1-minute log returns (normal = 0).
    acf_abs_r, acf_r: autocorrelation of |r| and r at lags 1..10 minutes.
    interarrival_cv: std/mean of the POSITIVE gaps (ms) between consecutive trades of a symbol.
        Zero gaps are fills of one taker order sweeping several levels in the same ms: they are
        fill structure, not arrival timing, and any burst model would get CV > 1 from them alone.
        Over positive gaps a Poisson process gives CV = 1, so CV > 1 shows real clustering of
        arrivals. interarrival_cv_all (all gaps) and same_ms_fraction are reported for reference.
    mean_run_length: mean length of runs of the same aggressor side, in trade order.
    coin_flip_run_length: the same for independent sides with the measured buy share p,
        1 / (2 p (1 - p)), i.e. 2.0 for p = 0.5.
    """
    per: dict[str, dict] = {}
    for sym, g in _by_symbol(df):
        minute, logp, _ = _minute_table(g)
        grid = np.full(int(minute[-1] - minute[0]) + 1, np.nan) if len(minute) else np.empty(0)
        ok = np.flatnonzero(np.diff(minute) == 1) + 1
        r = logp[ok] - logp[ok - 1]
        grid[minute[ok] - minute[0]] = r
        gaps = np.diff(g["time_ms"].to_numpy())
        pos = gaps[gaps > 0].astype(np.float64)
        buy = ~g["buyer_maker"].to_numpy(dtype=bool)
        runs = 1 + int(np.count_nonzero(buy[1:] != buy[:-1])) if len(buy) else 0
        per[str(sym)] = {
            "n_trades": int(len(g)),
            "n_returns": int(len(r)),
            "kurtosis_1m": _excess_kurtosis(r) if len(r) > 3 else float("nan"),
            "acf_abs_r": _acf(np.abs(grid), LAGS),
            "acf_r": _acf(grid, LAGS),
            "return_sd_1m": float(np.std(r)) if len(r) else float("nan"),
            "interarrival_cv": float(pos.std() / pos.mean()) if len(pos) > 1 else float("nan"),
            "interarrival_cv_all": float(gaps.std() / gaps.mean()) if len(gaps) > 1 and gaps.mean() > 0 else float("nan"),
            "same_ms_fraction": float(np.mean(gaps == 0)) if len(gaps) else float("nan"),
            "n_gaps": int(len(pos)),
            "n_runs": runs,
            "buy_share": float(buy.mean()) if len(buy) else float("nan"),
        }
    syms = list(per)
    nret = [per[s]["n_returns"] for s in syms]
    ntr = [per[s]["n_trades"] for s in syms]
    buy_share = _pool([per[s]["buy_share"] for s in syms], ntr)
    runs = sum(per[s]["n_runs"] for s in syms)
    return {
        "n_trades": sum(ntr),
        "n_returns": sum(nret),
        "kurtosis_1m": _pool([per[s]["kurtosis_1m"] for s in syms], nret),
        "acf_abs_r": [_pool([per[s]["acf_abs_r"][k] for s in syms], nret) for k in range(LAGS)],
        "acf_r": [_pool([per[s]["acf_r"][k] for s in syms], nret) for k in range(LAGS)],
        "interarrival_cv": _pool([per[s]["interarrival_cv"] for s in syms], [per[s]["n_gaps"] for s in syms]),
        "interarrival_cv_all": _pool([per[s]["interarrival_cv_all"] for s in syms], ntr),
        "same_ms_fraction": _pool([per[s]["same_ms_fraction"] for s in syms], ntr),
        "mean_run_length": sum(ntr) / runs if runs else float("nan"),
        "coin_flip_run_length": 1.0 / (2.0 * buy_share * (1.0 - buy_share)) if 0 < buy_share < 1 else float("nan"),
        "per_symbol": per,
    }


def minute_imbalance(df: pd.DataFrame) -> pd.Series:
    """(taker-buy qty - taker-sell qty) / total qty per (symbol, minute_ms) with trades."""
    parts = []
    for sym, g in _by_symbol(df):
        minute, _, imb = _minute_table(g)
        parts.append(pd.Series(imb, index=pd.MultiIndex.from_arrays(
            [np.full(len(minute), sym, dtype=object), minute * MINUTE_MS], names=["symbol", "minute_ms"])))
    return _concat(parts, "imbalance")


def signal_edge_detail(df: pd.DataFrame) -> dict:
    """Directional accuracy of sign(imbalance of minute t-1) for the return of minute t.

    Pairs need minutes t-1 and t both traded (the return of t is last price t-1 -> last price t,
    the imbalance is over minute t-1's trades); ties (zero imbalance or zero return) are left
    out. Returns edge, n and the binomial standard error sqrt(0.25 / n) under no edge.
    """
    hits = n = 0
    for _, g in _by_symbol(df):
        minute, logp, imb = _minute_table(g)
        ok = np.flatnonzero(np.diff(minute) == 1) + 1
        s_imb = np.sign(imb[ok - 1])
        s_ret = np.sign(logp[ok] - logp[ok - 1])
        keep = (s_imb != 0) & (s_ret != 0)
        hits += int(np.count_nonzero(s_imb[keep] == s_ret[keep]))
        n += int(keep.sum())
    return {"edge": hits / n if n else float("nan"), "n": n,
            "se": math.sqrt(0.25 / n) if n else float("nan")}


def signal_edge(df: pd.DataFrame) -> float:
    """Next-minute directional accuracy of sign(previous-minute imbalance); 0.5 = no edge."""
    return signal_edge_detail(df)["edge"]
