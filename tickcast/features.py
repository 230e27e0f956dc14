"""Rolling features over 1-minute bars: one pure definition for the stream, training and serving.

Every feature of the bar at minute t is a function of the last `WINDOW` minutes of its symbol
(t - WINDOW + 1 .. t) and nothing else, so a stream that keeps those minutes as state, a batch
recomputation over the whole table and the serving path give the same numbers whatever batch
boundaries they saw. Exponential averages are finite: weights (1 - alpha)^i over a fixed number of
minutes, normalised.

Windows are in minutes of time, not rows. A minute without a bar inside a segment is filled as
"no trading": close carried forward, volumes and trade count 0, imbalance 0. More than
`GAP_RESET` missing minutes in a row end the segment: the state resets, and the next bar starts a
new one. Before a segment's first minute the window is padded with its first close (zero returns)
and zero volume; rows of a segment younger than `WINDOW` minutes are flagged `warmup`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tickcast.timeunits import MINUTE_MS

if TYPE_CHECKING:  # annotations only: pandas is imported where it is used
    import pandas as pd

WINDOW = 120          # minutes of look-back available to every feature (also the warm-up)
GAP_RESET = 15        # more missing minutes in a row than this end a segment
# Bump when the implementation changes a number without changing the specification below.
IMPL_REVISION = 1

# (name, what it is): the specification the version hash covers, in output order.
SPEC: tuple[tuple[str, str], ...] = (
    ("ret_1", "log return over 1 minute"),
    ("ret_5", "log return over 5 minutes"),
    ("ret_15", "log return over 15 minutes"),
    ("ret_60", "log return over 60 minutes"),
    ("rv_15", "realized volatility: sqrt of the sum of squared 1-minute log returns, 15 minutes"),
    ("rv_60", "realized volatility over 60 minutes"),
    ("rsi_14", "RSI of 1-minute log returns: finite EMA alpha 1/14 over 42 minutes; gains / (gains + losses)"),
    ("macd", "(EMA12 - EMA26) / close; finite EMAs over 36 and 78 minutes"),
    ("macd_signal", "finite EMA9 (27 minutes) of macd"),
    ("macd_hist", "macd - macd_signal"),
    ("bb_pctb_20", "Bollinger %B: (close - (SMA20 - 2 sd)) / (4 sd), 0.5 when sd <= 1e-10 SMA20 (flat prices)"),
    ("volume_z_60", "z-score of log(1 + quote volume) against the last 60 minutes, 0 when sd <= 1e-9"),
    ("imbalance", "taker-buy imbalance of the minute: (buy - sell) / volume"),
    ("imbalance_mean_15", "mean imbalance over 15 minutes"),
    ("vwap_dist_1", "log(close / the minute's VWAP)"),
    ("vwap_dist_60", "log(close / VWAP over 60 minutes), 0 without volume"),
    ("intensity", "log(1 + trade count)"),
    ("intensity_ratio_60", "log((trades + 1) / (mean trades over 60 minutes + 1))"),
    ("tod_sin", "sin(2 pi minute-of-day / 1440)"),
    ("tod_cos", "cos(2 pi minute-of-day / 1440)"),
    ("dow_sin", "sin(2 pi weekday / 7)"),
    ("dow_cos", "cos(2 pi weekday / 7)"),
)
# What the history families see directly: the last HISTORY_BARS minutes, newest first, one column
# per (channel, minute) so that a model still takes ONE row of silver.features as its input.
HISTORY_BARS = 30
HISTORY_CHANNELS: tuple[tuple[str, str], ...] = (
    ("hr", "1-minute log return of minute t-{k}"),
    ("hv", "log(1 + quote volume) of minute t-{k} minus its mean over the last 60 minutes"),
    ("hi", "taker-buy imbalance of minute t-{k}"),
)
HISTORY_SPEC: tuple[tuple[str, str], ...] = tuple(
    (f"{c}_{k}", what.format(k=k)) for c, what in HISTORY_CHANNELS for k in range(HISTORY_BARS))
# The summary features (what the linear model and the MLP take, what drift watches)...
FEATURES: tuple[str, ...] = tuple(n for n, _ in SPEC)
# ...and the raw history columns (channel-major: hr_0..hr_29, hv_0.., hi_0..).
HISTORY: tuple[str, ...] = tuple(n for n, _ in HISTORY_SPEC)
# Every feature column of a silver.features row.
COLUMNS: tuple[str, ...] = FEATURES + HISTORY
# Columns of a feature row besides the features themselves.
META = ("symbol", "window_ms", "feature_version", "close", "minutes_in_segment", "warmup")
# What the state keeps per minute (and what a bar contributes).
RAW = ("close", "volume", "quote_volume", "trade_count", "imbalance", "vwap")


def feature_version() -> str:
    """A short hash of the feature specification (names, meaning, windows, implementation revision)."""
    spec = {"window": WINDOW, "gap_reset": GAP_RESET, "spec": SPEC, "history": HISTORY_SPEC, "impl": IMPL_REVISION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class State:
    """What a symbol's stream remembers: the last <= WINDOW minutes of its current segment."""
    seg_start: int = -1                       # first minute (epoch minutes) of the segment; -1 = none
    buf_start: int = -1                       # minute of buf[...][0]
    buf: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.seg_start < 0

    @property
    def last_minute(self) -> int:
        return self.buf_start + len(self.buf["close"]) - 1 if not self.empty else -1


def _dense(minutes: np.ndarray, bars: dict[str, np.ndarray], start: int, prev_close: float | None) -> dict[str, np.ndarray]:
    """Bars at `minutes` (sorted, >= start) -> one value per minute from `start` to the last bar."""
    import pandas as pd  # deferred: the service's workers import this module for its names only (~50 MiB)

    n = int(minutes[-1] - start + 1)
    pos = (minutes - start).astype(np.int64)
    out = {}
    close = np.full(n, np.nan)
    close[pos] = bars["close"]
    if prev_close is not None and np.isnan(close[0]):
        close[0] = prev_close
    out["close"] = pd.Series(close).ffill().to_numpy()
    for c in ("volume", "quote_volume", "trade_count", "imbalance"):
        a = np.zeros(n)
        a[pos] = bars[c]
        out[c] = a
    vwap = out["close"].copy()
    vwap[pos] = bars["vwap"]
    out["vwap"] = vwap
    return out


def _fema_weights(alpha: float, length: int) -> np.ndarray:
    """Finite-EMA weights for a window ordered oldest -> newest (they sum to 1)."""
    w = (1.0 - alpha) ** np.arange(length - 1, -1, -1, dtype=float)
    return w / w.sum()


def _rolling_fema(m: np.ndarray, span: int, length: int) -> np.ndarray:
    """Finite EMA at every column of `m` (rows = samples) that has `length` columns behind it."""
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(m, length, axis=1) @ _fema_weights(2.0 / (span + 1), length)


def _window_features(g: dict[str, np.ndarray], positions: np.ndarray, minutes: np.ndarray) -> dict[str, np.ndarray]:
    """Features at `positions` of the dense grid `g`; windows reaching before index 0 are padded."""
    from numpy.lib.stride_tricks import sliding_window_view

    W = WINDOW
    pad = W - 1
    first_close = g["close"][0]
    fills = {"close": first_close, "vwap": first_close}
    win = {c: sliding_window_view(np.concatenate([np.full(pad, fills.get(c, 0.0)), g[c]]), W)[positions]
           for c in RAW}
    C = win["close"]
    lc = np.log(C)
    last = lc[:, -1]
    r = np.diff(lc, axis=1)                                   # (n, W-1) 1-minute log returns
    f: dict[str, np.ndarray] = {}
    for k in (1, 5, 15, 60):
        f[f"ret_{k}"] = last - lc[:, -1 - k]
    f["rv_15"] = np.sqrt(np.sum(r[:, -15:] ** 2, axis=1))
    f["rv_60"] = np.sqrt(np.sum(r[:, -60:] ** 2, axis=1))
    w = _fema_weights(1.0 / 14, 42)
    gain = np.maximum(r[:, -42:], 0.0) @ w
    loss = np.maximum(-r[:, -42:], 0.0) @ w
    tot = gain + loss
    f["rsi_14"] = np.divide(gain, tot, out=np.full_like(gain, 0.5), where=tot > 0)
    ema12 = _rolling_fema(C[:, -(36 + 26):], 12, 36)[:, -27:]   # at the last 27 minutes
    ema26 = _rolling_fema(C[:, -(78 + 26):], 26, 78)[:, -27:]
    macd_series = (ema12 - ema26) / C[:, -27:]
    f["macd"] = macd_series[:, -1]
    f["macd_signal"] = macd_series @ _fema_weights(2.0 / 10, 27)
    f["macd_hist"] = f["macd"] - f["macd_signal"]
    c20 = C[:, -20:]
    m20, sd20 = c20.mean(axis=1), c20.std(axis=1)
    # Flat prices give an sd of rounding noise, not 0: without the threshold %B would be noise too.
    f["bb_pctb_20"] = np.divide(C[:, -1] - (m20 - 2 * sd20), 4 * sd20, out=np.full_like(m20, 0.5),
                                where=sd20 > 1e-10 * m20)
    dv = np.log1p(win["quote_volume"][:, -60:])
    mu, sd = dv.mean(axis=1), dv.std(axis=1)
    f["volume_z_60"] = np.divide(dv[:, -1] - mu, sd, out=np.zeros_like(mu), where=sd > 1e-9)
    imb = win["imbalance"]
    f["imbalance"] = imb[:, -1]
    f["imbalance_mean_15"] = imb[:, -15:].mean(axis=1)
    f["vwap_dist_1"] = last - np.log(win["vwap"][:, -1])
    qv, v = win["quote_volume"][:, -60:].sum(axis=1), win["volume"][:, -60:].sum(axis=1)
    vw60 = np.divide(qv, v, out=np.ones_like(qv), where=v > 0)
    f["vwap_dist_60"] = np.where(v > 0, last - np.log(vw60), 0.0)
    n = win["trade_count"]
    f["intensity"] = np.log1p(n[:, -1])
    f["intensity_ratio_60"] = np.log((n[:, -1] + 1.0) / (n[:, -60:].mean(axis=1) + 1.0))
    mod = (minutes % 1440).astype(float)
    dow = ((minutes // 1440 + 3) % 7).astype(float)          # 1970-01-01 was a Thursday: Monday = 0
    f["tod_sin"], f["tod_cos"] = np.sin(2 * np.pi * mod / 1440), np.cos(2 * np.pi * mod / 1440)
    f["dow_sin"], f["dow_cos"] = np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7)
    rel_dv = dv - mu[:, None]
    for k in range(HISTORY_BARS):
        f[f"hr_{k}"] = r[:, -1 - k]
        f[f"hv_{k}"] = rel_dv[:, -1 - k]
        f[f"hi_{k}"] = imb[:, -1 - k]
    return f


def _segments(minutes: np.ndarray, last_minute: int) -> list[tuple[int, int, bool]]:
    """Split sorted new minutes into runs: (start index, end index, continues the state's segment)."""
    runs, i0 = [], 0
    cont = last_minute >= 0 and minutes[0] - last_minute - 1 <= GAP_RESET
    for i in range(1, len(minutes) + 1):
        if i == len(minutes) or minutes[i] - minutes[i - 1] - 1 > GAP_RESET:
            runs.append((i0, i, cont if i0 == 0 else False))
            i0 = i
    return runs


CHUNK = 16_384   # rows per window matrix: bounds memory on months of bars


def advance(state: State, bars: pd.DataFrame, symbol: str, version: str | None = None
            ) -> tuple[State, pd.DataFrame, pd.DataFrame]:
    """Apply a symbol's new bars to its state (pure).

    Args:
        state: the symbol's state (an empty `State()` for a batch computation from scratch).
        bars: columns `window_ms` plus `RAW`, in any order; floats.
    Returns:
        (new state, feature rows in `META + COLUMNS` order, late bars: minutes not after the state's last).
    """
    import pandas as pd  # deferred: the service's workers import this module for its names only (~50 MiB)

    version = version or feature_version()
    bars = bars.sort_values("window_ms", kind="stable")
    minutes_all = (bars["window_ms"].to_numpy(np.int64) // MINUTE_MS)
    late_mask = minutes_all <= state.last_minute
    # A minute seen twice in one batch: the first wins, the repeat is late.
    late_mask |= np.concatenate([[False], minutes_all[1:] == minutes_all[:-1]])
    late = bars[late_mask]
    bars, minutes = bars[~late_mask], minutes_all[~late_mask]
    out = []
    if len(bars):
        vals = {c: bars[c].to_numpy(float) for c in RAW}
        for i0, i1, cont in _segments(minutes, state.last_minute):
            mins = minutes[i0:i1]
            part = {c: v[i0:i1] for c, v in vals.items()}
            if cont:
                dense = _dense(mins, part, state.last_minute + 1, state.buf["close"][-1])
                g = {c: np.concatenate([state.buf[c], dense[c]]) for c in RAW}
                g_start, seg_start = state.buf_start, state.seg_start
            else:
                g, g_start, seg_start = _dense(mins, part, int(mins[0]), None), int(mins[0]), int(mins[0])
            pos = (mins - g_start).astype(np.int64)
            for j in range(0, len(pos), CHUNK):
                p, m = pos[j:j + CHUNK], mins[j:j + CHUNK]
                feats = _window_features(g, p, m)
                in_seg = (m - seg_start + 1).astype(np.int32)
                frame = pd.DataFrame({
                    "symbol": symbol, "window_ms": m * MINUTE_MS, "feature_version": version,
                    "close": g["close"][p], "minutes_in_segment": in_seg, "warmup": in_seg < WINDOW,
                    **{k: feats[k] for k in COLUMNS}})
                out.append(frame)
            keep = min(WINDOW, len(g["close"]))
            state = State(seg_start, g_start + len(g["close"]) - keep, {c: g[c][-keep:].copy() for c in RAW})
    rows = pd.concat(out, ignore_index=True) if out else empty_rows()
    return state, rows, late


def empty_rows() -> pd.DataFrame:
    import pandas as pd  # deferred: the service's workers import this module for its names only (~50 MiB)

    cols = {c: pd.Series(dtype="float64") for c in META + COLUMNS}
    cols.update(symbol=pd.Series(dtype="object"), window_ms=pd.Series(dtype="int64"),
                feature_version=pd.Series(dtype="object"), minutes_in_segment=pd.Series(dtype="int32"),
                warmup=pd.Series(dtype="bool"))
    return pd.DataFrame(cols)[list(META + COLUMNS)]


def bars_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """silver.bars_1m rows (decimals, timestamps) -> the float inputs `advance` takes (plus symbol)."""
    import pandas as pd  # deferred: the service's workers import this module for its names only (~50 MiB)

    ws = bars["window_start"]
    if pd.api.types.is_datetime64_any_dtype(ws):
        ms = ws.dt.tz_localize(None).astype("datetime64[ms]").astype(np.int64) if ws.dt.tz is not None \
            else ws.astype("datetime64[ms]").astype(np.int64)
    else:
        ms = ws.astype(np.int64)
    out = pd.DataFrame({"symbol": bars["symbol"].astype(str).to_numpy(), "window_ms": np.asarray(ms, np.int64)})
    for c in RAW:
        out[c] = pd.to_numeric(bars[c].astype(float) if bars[c].dtype == object else bars[c], errors="coerce")
    out["vwap"] = out["vwap"].fillna(out["close"])
    out["imbalance"] = out["imbalance"].fillna(0.0)
    return out


def compute(bars: pd.DataFrame) -> pd.DataFrame:
    """Batch: feature rows for every bar of every symbol, from scratch (the stream's code path)."""
    import pandas as pd  # deferred: the service's workers import this module for its names only (~50 MiB)

    frames = [advance(State(), g, str(sym))[1] for sym, g in bars.groupby("symbol", sort=True)]
    return pd.concat(frames, ignore_index=True) if frames else empty_rows()
