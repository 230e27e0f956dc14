"""The hot path's feature step: each symbol's rolling state held in the driver, advanced by the bars
a batch closes, with `features.advance` (the code the features job, training and serving use).

After a (re)start the state is rebuilt from silver.bars_1m (`rebuild`), up to the symbol's newest
feature row; the bars after it (a crash between the bars and the features commits, or bars the
separate jobs or a backfill wrote) are applied in the run's first batch, so every bar gets its row.
"""
from __future__ import annotations

import numpy as np

from tickcast import features, lake, tables
from tickcast.settings import Settings
from tickcast.timeunits import MINUTE_MS


def segment_start(minutes: np.ndarray) -> int:
    """The first minute of the segment the last of `minutes` (sorted epoch minutes) is in (pure):
    after the last run of more than `features.GAP_RESET` missing minutes."""
    gaps = np.flatnonzero(np.diff(minutes) - 1 > features.GAP_RESET)
    return int(minutes[gaps[-1] + 1] if len(gaps) else minutes[0])


def newest_per_symbol(t) -> dict[str, int]:
    """Rows with symbol and window_start (Arrow) -> {symbol: its newest window start, epoch ms} (pure)."""
    out: dict[str, int] = {}
    for sym, ms in zip(t["symbol"].to_pylist(), lake.to_ms(t["window_start"])):
        out[sym] = max(out.get(sym, int(ms)), int(ms))
    return out


def rebuild(bars, symbol: str) -> features.State:
    """A symbol's state after its bars (`features.bars_frame` rows, any order), as the features job
    would hold it after streaming them all (pure).

    Only the tail a feature row can see is replayed: from the segment's start, or from
    `WINDOW + GAP_RESET` minutes before the last bar (a bar lies in every `GAP_RESET + 1` minutes
    of a segment, so the grid's last `WINDOW` minutes are the same), with the segment's true start.
    """
    if not len(bars):
        return features.State()
    bars = bars.sort_values("window_ms", kind="stable").drop_duplicates("window_ms")
    minutes = bars["window_ms"].to_numpy(np.int64) // MINUTE_MS
    seg = segment_start(minutes)
    tail = bars[minutes >= max(seg, int(minutes[-1]) - features.WINDOW - features.GAP_RESET)]
    state, _, _ = features.advance(features.State(), tail, symbol)
    state.seg_start = seg
    return state


class FeatureBook:
    """Every symbol's state, and the bars still owed a feature row after a (re)start."""

    def __init__(self, s: Settings):
        self.s = s
        self.version = features.feature_version()
        self.states: dict[str, features.State] | None = None

    def start(self):
        """Rebuild every symbol's state from the tables; returns the bars owed a feature row (the
        `bars_frame` rows after each symbol's newest feature row), to apply first."""
        import pandas as pd
        self.states = {}
        if not lake.exists(tables.BARS, self.s):
            return features.bars_frame(pd.DataFrame(columns=["symbol", "window_start", *features.RAW]))
        bars = features.bars_frame(lake.read(tables.BARS, self.s, columns=["symbol", "window_start", *features.RAW])
                                   .to_pandas())
        done: dict[str, int] = {}
        if lake.exists(tables.FEATURES, self.s):
            f = lake.read(tables.FEATURES, self.s, columns=["symbol", "window_start"],
                          filters=[("feature_version", "=", self.version)])
            done = newest_per_symbol(f)
        owed = []
        for sym, g in bars.groupby("symbol", sort=True):
            upto = done.get(sym)
            before = g if upto is None else g[g["window_ms"] <= upto]
            if upto is not None:
                self.states[sym] = rebuild(before, sym)
            owed.append(g if upto is None else g[g["window_ms"] > upto])
        return pd.concat(owed, ignore_index=True) if owed else bars.iloc[:0]

    def advance(self, bars):
        """Apply new bars (`bars_frame` rows) -> (feature rows in `META + COLUMNS` order, late bars
        with their symbol), both pandas."""
        import pandas as pd

        rows, late = [], []
        for sym, g in bars.groupby("symbol", sort=True):
            st, r, lt = features.advance(self.states.get(sym, features.State()), g, str(sym), self.version)
            self.states[sym] = st
            rows.append(r)
            late.append(lt.assign(symbol=sym))
        return (pd.concat(rows, ignore_index=True) if rows else features.empty_rows(),
                pd.concat(late, ignore_index=True) if late else bars.iloc[:0])


def bar_inputs(bars: list[dict]):
    """The bars a batch closed (`BarWriter.close` rows: decimals, `window_ms`) -> `bars_frame` rows."""
    import pandas as pd

    return features.bars_frame(pd.DataFrame({"symbol": [b["symbol"] for b in bars],
                                             "window_start": [b["window_ms"] for b in bars],
                                             **{c: [b[c] for b in bars] for c in features.RAW}}))
