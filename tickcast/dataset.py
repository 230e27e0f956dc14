"""Training data: feature rows joined to forward-return labels, and walk-forward folds (pure pandas)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickcast.timeunits import MINUTE_MS


def labels(bars: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Forward log return over `horizon` minutes per (symbol, window_ms); no label spans a gap.

    Args:
        bars: columns symbol, window_ms, close (float).
    Returns:
        symbol, window_ms, label_return: only rows whose next `horizon` minutes all have a bar.
    """
    out = []
    for sym, g in bars.sort_values(["symbol", "window_ms"]).groupby("symbol", sort=False):
        m = g["window_ms"].to_numpy(np.int64) // MINUTE_MS
        c = g["close"].to_numpy(float)
        if len(m) <= horizon:
            continue
        # Minutes are unique and sorted, so the bar `horizon` rows ahead is `horizon` minutes ahead
        # exactly when no minute in between is missing.
        ok = m[horizon:] - m[:-horizon] == horizon
        idx = np.nonzero(ok)[0]
        out.append(pd.DataFrame({"symbol": sym, "window_ms": m[idx] * MINUTE_MS,
                                 "label_return": np.log(c[idx + horizon] / c[idx])}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        {"symbol": pd.Series(dtype=object), "window_ms": pd.Series(dtype=np.int64),
         "label_return": pd.Series(dtype=float)})


def join(feature_rows: pd.DataFrame, label_rows: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (warm-up rows left out) with their label, sorted by time then symbol."""
    f = feature_rows[~feature_rows["warmup"].astype(bool)]
    d = f.merge(label_rows, on=["symbol", "window_ms"], how="inner")
    return d.sort_values(["window_ms", "symbol"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Fold:
    number: int
    test_start_ms: int
    test_end_ms: int          # exclusive
    train_end_ms: int         # train rows have window_ms + horizon <= this (labels end a purge gap before the test)

    def train_mask(self, window_ms: np.ndarray, horizon: int) -> np.ndarray:
        return window_ms + horizon * MINUTE_MS <= self.train_end_ms

    def test_mask(self, window_ms: np.ndarray) -> np.ndarray:
        return (window_ms >= self.test_start_ms) & (window_ms < self.test_end_ms)


def walk_forward(window_ms: np.ndarray, horizon: int, folds: int = 4, initial: float = 0.5) -> list[Fold]:
    """Expanding-window folds over time with a purge gap of `horizon` minutes before each test block.

    The first `initial` share of the time span is training only; the rest is cut into `folds`
    consecutive test blocks. Fold k trains on every row whose label ends at least `horizon` minutes
    before its test block starts.
    """
    if len(window_ms) == 0:
        raise ValueError("no labelled rows to evaluate on")
    lo, hi = int(window_ms.min()), int(window_ms.max()) + MINUTE_MS
    first = lo + int((hi - lo) * initial) // MINUTE_MS * MINUTE_MS
    edges = np.linspace(first, hi, folds + 1).astype(np.int64) // MINUTE_MS * MINUTE_MS
    edges[-1] = hi
    return [Fold(k, int(edges[k]), int(edges[k + 1]), int(edges[k]) - horizon * MINUTE_MS)
            for k in range(folds)]
