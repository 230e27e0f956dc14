"""Pure builders: pandas DataFrames in, Plotly figures (or the frames behind them) out. No I/O.

Figures are plain dicts (Plotly's JSON figure schema) with numeric columns as typed arrays
(base64): building `plotly.graph_objects` validated every value and cost a market refresh ~80 ms.
Times go as epoch milliseconds on `date` axes. Every figure carries the caller's constant
`uirevision`, so a refresh keeps the user's zoom.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tickcast.timeunits import MINUTE_MS

MAX_CANDLES = 1_500                                  # the browser never draws more (docs/performance.md#browser-candles)
CANDLE_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 240, 720, 1440)
RANGES = {"1h": 60, "6h": 360, "1d": 1440, "1w": 10080}   # minutes
UP, DOWN, PENDING = "#2ca02c", "#d62728", "#9e9e9e"
Z95 = 1.959963984540054


# ---------------------------------------------------------------- candles

def candle_minutes(span_minutes: int, max_candles: int = MAX_CANDLES) -> int:
    """The finest candle width (minutes) that draws at most `max_candles` over the span."""
    for m in CANDLE_MINUTES:
        if -(-span_minutes // m) <= max_candles:
            return m
    return CANDLE_MINUTES[-1]


def _ms(ts: pd.Series) -> np.ndarray:
    """A UTC datetime column as int64 epoch ms."""
    return (pd.to_datetime(ts, utc=True, cache=False).astype("datetime64[ms, UTC]").astype("int64")).to_numpy()


def resample(bars: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """1-minute bars -> `minutes`-wide candles aligned on the epoch (empty buckets have no candle).

    Args:
        bars: window_start (UTC), open, high, low, close, volume of ONE symbol, any order.
        minutes: candle width.
    Returns:
        window_start, open, high, low, close, volume, bars (1-minute bars in the candle), sorted.
    """
    cols = ["window_start", "open", "high", "low", "close", "volume"]
    if bars.empty:
        return pd.DataFrame({**{c: pd.Series(dtype="float64") for c in cols[1:]},
                             "window_start": pd.Series(dtype="datetime64[ms, UTC]"),
                             "bars": pd.Series(dtype="int64")})[cols + ["bars"]]
    ms = _ms(bars["window_start"])
    order = np.argsort(ms, kind="stable")
    ms = ms[order]
    width = minutes * MINUTE_MS
    bucket = ms // width
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ms)] - 1
    col = {c: bars[c].to_numpy(dtype="float64")[order] for c in cols[1:]}
    out = pd.DataFrame({
        "window_start": pd.to_datetime(bucket[starts] * width, unit="ms", utc=True, cache=False),
        "open": col["open"][starts],
        "high": np.maximum.reduceat(col["high"], starts),
        "low": np.minimum.reduceat(col["low"], starts),
        "close": col["close"][ends],
        "volume": np.add.reduceat(col["volume"], starts),
        "bars": ends - starts + 1,
    })
    return out


def in_range(df: pd.DataFrame, col: str, end, minutes: int) -> pd.DataFrame:
    """Rows with `col` in (end - minutes, end]: the range ends at the newest row, not the wall clock."""
    if df.empty or end is None:
        return df.iloc[0:0]
    lo = end - pd.Timedelta(minutes=minutes)
    t = df[col]
    return df[(t > lo) & (t <= end)]


def prediction_points(preds: pd.DataFrame, outcomes: pd.DataFrame, minutes: int) -> dict[int, pd.DataFrame]:
    """Per horizon: P(up) at each candle and whether it was right, once known.

    One prediction per (bar, horizon): the newest model version's (by prediction_time). Over
    wider candles, P(up) is the candle's mean and `right` the share of its known predictions
    that were right (None while none is known).

    Args:
        preds: symbol's gold.predictions rows (window_start, horizon, model_version, prob_up, prediction_time).
        outcomes: its gold.outcomes rows (window_start, horizon, model_version, hit).
        minutes: candle width.
    Returns:
        horizon -> DataFrame(window_start, prob_up, right (float share or NaN), n).
    """
    out: dict[int, pd.DataFrame] = {}
    if preds.empty:
        return out
    p = preds.sort_values("prediction_time").drop_duplicates(["window_start", "horizon"], keep="last")
    o = outcomes[["window_start", "horizon", "model_version", "hit"]] if not outcomes.empty else None
    if o is not None:
        p = p.merge(o, on=["window_start", "horizon", "model_version"], how="left")
    else:
        p = p.assign(hit=pd.NA)
    hit = pd.array(p["hit"], dtype="boolean")
    p = p.assign(known=(~hit.isna()).astype(float),
                 right=np.where(hit.isna(), 0.0, hit.fillna(False).astype(bool).astype(float)))
    width = minutes * MINUTE_MS
    for h, g in p.groupby("horizon", sort=True):
        b = _ms(g["window_start"]) // width * width
        agg = (pd.DataFrame({"b": b, "prob_up": g["prob_up"].to_numpy(float), "known": g["known"].to_numpy(),
                             "right": g["right"].to_numpy()})
               .groupby("b", sort=True).agg(prob_up=("prob_up", "mean"), known=("known", "sum"),
                                            right=("right", "sum"), n=("prob_up", "size")))
        share = np.where(agg["known"] > 0, agg["right"] / agg["known"].where(agg["known"] > 0, 1), np.nan)
        out[int(h)] = pd.DataFrame({"window_start": pd.to_datetime(agg.index.to_numpy(), unit="ms", utc=True, cache=False),
                                    "prob_up": agg["prob_up"].to_numpy(), "right": share,
                                    "n": agg["n"].to_numpy()})
    return out


RIGHT_SCALE = [[0.0, DOWN], [0.5, PENDING], [1.0, UP]]


def arr(v) -> dict | list:
    """A numeric column as Plotly's typed-array spec (base64): no per-element JSON, no validation."""
    from _plotly_utils.utils import to_typed_array_spec

    a = np.ascontiguousarray(np.asarray(v, dtype="float64"))
    return to_typed_array_spec(a) if a.size else []


def tx(ts) -> dict | list:
    """Times as epoch milliseconds (float64: exact for ms) for a `date` axis."""
    if len(ts) == 0:
        return []
    return arr(epoch_ms(ts))


def epoch_ms(ts) -> np.ndarray:
    """Times as epoch milliseconds (float64)."""
    return pd.to_datetime(pd.Series(ts), utc=True, cache=False).astype("datetime64[ms, UTC]").astype("int64").to_numpy(
        dtype="float64")


def broken_at_gaps(x_ms: np.ndarray, step_ms: float, *cols, fill: float = np.nan) -> tuple[np.ndarray, ...]:
    """`x_ms` and columns with a `fill` point one step after each point that a gap follows (more
    than a step to the next): Plotly breaks a line at NaN, so a pause in the data (the pipeline
    stopped) shows as a pause instead of a line drawn across it. (A filled area is drawn across a
    NaN: the volume's stepped area takes 0 there instead.)"""
    x = np.asarray(x_ms, dtype="float64")
    cols = [np.asarray(c, dtype="float64") for c in cols]
    at = np.flatnonzero(np.diff(x) > 1.5 * step_ms) + 1 if x.size > 1 else np.empty(0, int)
    if not at.size:
        return (x, *cols)
    return (np.insert(x, at, x[at - 1] + step_ms), *(np.insert(c, at, fill) for c in cols))


def values(spec) -> np.ndarray:
    """Decode what `arr`/`tx` made (or a plain list) back to numpy: for tests and tools."""
    import base64

    if isinstance(spec, dict) and "bdata" in spec:
        return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    return np.asarray(spec)


def _title(text: str) -> dict:
    return {"text": text, "x": 0.01, "font": {"size": 14}}


def _hline(y: float, yref: str = "y", color: str = "#bbb", dash: str = "solid") -> dict:
    return {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": yref, "y0": y, "y1": y,
            "line": {"width": 1, "color": color, "dash": dash}}


def _note(y: float, text: str) -> dict:
    return {"xref": "paper", "x": 1, "y": y, "text": text, "showarrow": False, "yanchor": "bottom",
            "xanchor": "right", "font": {"color": DOWN}}


def market_figure(candles: pd.DataFrame, points: dict[int, pd.DataFrame], symbol: str, minutes: int,
                  uirevision: str) -> dict:
    """Candles + volume + P(up) per horizon (green right, red wrong, grey not known yet), one x axis."""
    step = minutes * MINUTE_MS
    cx = epoch_ms(candles["window_start"])           # once: the candles' and the volume's x
    x = arr(cx)
    vx, vol = broken_at_gaps(cx, step, candles["volume"], fill=0.0) if len(candles) else ([], [])
    data = [
        {"type": "candlestick", "x": x, "open": arr(candles["open"]), "high": arr(candles["high"]),
         "low": arr(candles["low"]), "close": arr(candles["close"]), "name": symbol, "yaxis": "y",
         "increasing": {"line": {"color": UP}}, "decreasing": {"line": {"color": DOWN}}, "showlegend": False},
        # A stepped area, not a bar trace: bars draw slower (docs/performance.md#browser-candles).
        {"type": "scatter", "x": arr(vx), "y": arr(vol), "name": "volume", "mode": "lines",
         "line": {"width": 1, "color": "#7f7f7f", "shape": "hv"}, "fill": "tozeroy", "yaxis": "y2",
         "showlegend": False, "hovertemplate": "%{y:.4f}<extra>volume</extra>"},
    ]
    dash_styles = ("solid", "dot", "dash", "dashdot", "longdash")
    for i, (h, pts) in enumerate(sorted(points.items())):
        px, prob, right = (broken_at_gaps(epoch_ms(pts["window_start"]), step, pts["prob_up"], pts["right"])
                           if len(pts) else ([], [], np.empty(0)))
        data.append({
            "type": "scatter", "x": arr(px), "y": arr(prob), "name": f"P(up) {h} min",
            "mode": "lines+markers", "yaxis": "y3",
            "line": {"width": 1, "dash": dash_styles[i % len(dash_styles)], "color": "#1f77b4"},
            "marker": {"size": 4 if minutes == 1 else 5, "color": arr(np.where(np.isnan(right), 0.5, right)),
                       "colorscale": RIGHT_SCALE, "cmin": 0, "cmax": 1},
            "customdata": arr(np.where(np.isnan(right), -1.0, right)),
            "hovertemplate": ("P(up) %{y:.3f}<br>" + ("right" if minutes == 1 else "share right")
                              + " %{customdata:.2f} (-1: not known yet)<extra>" + f"{h} min</extra>")})
    width = "1 minute" if minutes == 1 else f"{minutes} minutes"
    layout = {
        "uirevision": uirevision, "margin": {"l": 60, "r": 20, "t": 30, "b": 30}, "height": 640, "hovermode": "x",
        "title": _title(f"{symbol} · candles of {width}"), "legend": {"orientation": "h", "y": 0.27, "x": 0.01},
        "xaxis": {"rangeslider": {"visible": False}, "type": "date", "anchor": "y3"},
        "yaxis": {"domain": [0.42, 1.0], "title": {"text": "price"}},
        "yaxis2": {"domain": [0.30, 0.40], "title": {"text": "volume"}, "anchor": "x"},
        "yaxis3": {"domain": [0.0, 0.25], "title": {"text": "P(up)"}, "range": [0, 1], "anchor": "x"},
        "shapes": [_hline(0.5, "y3")],
    }
    return {"data": data, "layout": layout}


# ---------------------------------------------------------------- model against reality

def counted(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The outcomes the scores count: after the model's training end, made before the outcome
    (gold.model_scores' rule), sorted by target time."""
    if outcomes.empty:
        return outcomes
    o = outcomes[outcomes["after_training_end"].astype(bool) & outcomes["made_before_outcome"].astype(bool)]
    return o.sort_values("target_time", kind="stable")


def out_of_sample(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The outcomes after the model's training end, whenever they were predicted, by target time."""
    if outcomes.empty:
        return outcomes
    return outcomes[outcomes["after_training_end"].astype(bool)].sort_values("target_time", kind="stable")


def _brier_terms(prob: np.ndarray, ret: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row (squared error, counts): rows with a zero return or no probability count 0 (as per_row)."""
    eps = 1e-7
    d = (ret != 0) & np.isfinite(prob) & np.isfinite(ret)
    y = (ret > 0).astype(float)
    se = (np.clip(np.nan_to_num(prob, nan=0.5), eps, 1 - eps) - y) ** 2
    return np.where(d, se, 0.0), d.astype(float)


def rolling_scores(o: pd.DataFrame, window: str = "60min", max_points: int = 1_500) -> pd.DataFrame:
    """Rolling hit rate and Brier score (model, climatology, momentum) over target time, with 95%
    bands for the model's (Wilson for the hit rate, normal for the Brier mean).

    Args:
        o: counted outcomes of one horizon and model version (`counted`), sorted by target_time.
        window: pandas offset of the rolling window.
        max_points: at most this many points (evenly thinned) go to the browser.
    Returns:
        target_time, n, hit, hit_lo, hit_hi, brier, brier_lo, brier_hi, climatology_hit,
        momentum_hit, climatology_brier, momentum_brier.
    """
    if o.empty:
        return pd.DataFrame(columns=["target_time", "n", "hit", "hit_lo", "hit_hi", "brier", "brier_lo",
                                     "brier_hi", "climatology_hit", "momentum_hit", "climatology_brier",
                                     "momentum_brier"])
    ret = o["realized_return"].to_numpy(float)
    idx = pd.DatetimeIndex(o["target_time"])
    cols = {}
    for name, prob_col, hit_col in (("", "prob_up", "hit"), ("climatology_", "climatology_prob_up", "climatology_hit"),
                                    ("momentum_", "momentum_prob_up", "momentum_hit")):
        hit = pd.array(o[hit_col], dtype="boolean")
        known = (~hit.isna()).astype(float)
        right = np.where(hit.isna(), 0.0, hit.fillna(False).astype(bool).astype(float))
        se, d = _brier_terms(o[prob_col].to_numpy(float), ret)
        f = pd.DataFrame({"k": known, "r": right, "se": se, "se2": se ** 2, "d": d}, index=idx)
        s = f.rolling(window).sum()
        cols[name] = s
    m = cols[""]
    n, k = m["k"].to_numpy(), m["r"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + Z95 ** 2 / n
        centre = (p + Z95 ** 2 / (2 * n)) / den
        half = Z95 * np.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n ** 2)) / den
        d = m["d"].to_numpy()
        brier = m["se"].to_numpy() / d
        var = np.maximum(m["se2"].to_numpy() / d - brier ** 2, 0)
        bh = Z95 * np.sqrt(var / np.maximum(d - 1, 1))
        out = pd.DataFrame({"target_time": idx, "n": n, "hit": p, "hit_lo": centre - half, "hit_hi": centre + half,
                            "brier": brier, "brier_lo": brier - bh, "brier_hi": brier + bh})
        for b in ("climatology_", "momentum_"):
            out[f"{b}hit"] = cols[b]["r"].to_numpy() / cols[b]["k"].to_numpy()
            out[f"{b}brier"] = cols[b]["se"].to_numpy() / cols[b]["d"].to_numpy()
    return _thin(out, max_points)


def cumulative_hits(o: pd.DataFrame, max_points: int = 1_500) -> pd.DataFrame:
    """Cumulative hit rate of the model and the baselines over target time (rows with a known hit)."""
    rows = {"target_time": pd.DatetimeIndex(o["target_time"]) if not o.empty else pd.DatetimeIndex([], tz="UTC")}
    for name, col in (("model", "hit"), ("climatology", "climatology_hit"), ("momentum", "momentum_hit")):
        hit = pd.array(o[col], dtype="boolean") if not o.empty else pd.array([], dtype="boolean")
        known = np.cumsum((~hit.isna()).astype(float))
        right = np.cumsum(np.where(hit.isna(), 0.0, hit.fillna(False).astype(bool).astype(float)))
        with np.errstate(invalid="ignore", divide="ignore"):
            rows[name] = right / known
    rows["n"] = np.arange(1, len(o) + 1)
    return _thin(pd.DataFrame(rows), max_points)


def calibration(o: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Reliability: per P(up) bin, the mean predicted probability, the observed up share and its
    95% Wilson band (rows with a nonzero return)."""
    if o.empty:
        return pd.DataFrame(columns=["bin", "predicted", "observed", "lo", "hi", "n"])
    ret = o["realized_return"].to_numpy(float)
    p = o["prob_up"].to_numpy(float)
    keep = (ret != 0) & np.isfinite(p)
    p, y = p[keep], (ret[keep] > 0).astype(float)
    b = np.clip((p * bins).astype(int), 0, bins - 1)
    rows = []
    for i in np.unique(b):
        sel = b == i
        n = int(sel.sum())
        obs = y[sel].mean()
        den = 1 + Z95 ** 2 / n
        centre = (obs + Z95 ** 2 / (2 * n)) / den
        half = Z95 * np.sqrt(obs * (1 - obs) / n + Z95 ** 2 / (4 * n ** 2)) / den
        rows.append({"bin": int(i), "predicted": float(p[sel].mean()), "observed": float(obs),
                     "lo": centre - half, "hi": centre + half, "n": n})
    return pd.DataFrame(rows)


def _thin(df: pd.DataFrame, max_points: int) -> pd.DataFrame:
    if len(df) <= max_points:
        return df.reset_index(drop=True)
    step = -(-len(df) // max_points)
    keep = np.r_[np.arange(0, len(df) - 1, step), len(df) - 1]   # always the newest point
    return df.iloc[keep].reset_index(drop=True)


def _band(x, lo, hi, name: str, color: str) -> list[dict]:
    return [{"type": "scatter", "x": x, "y": arr(hi), "mode": "lines", "line": {"width": 0}, "showlegend": False,
             "hoverinfo": "skip"},
            {"type": "scatter", "x": x, "y": arr(lo), "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
             "fillcolor": color, "name": name, "hoverinfo": "skip"}]


def _layout(title: str, uirevision: str, height: int, ytitle: str, **kw) -> dict:
    return {"uirevision": uirevision, "title": _title(title), "height": height,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 30}, "yaxis": {"title": {"text": ytitle}},
            "xaxis": {"type": "date"}, "legend": {"orientation": "h", "y": -0.15}, **kw}


def rolling_figure(r: pd.DataFrame, metric: str, title: str, uirevision: str,
                   scores: pd.DataFrame | None = None) -> dict:
    """Rolling `hit` or `brier` of the model (with its 95% band) against the baselines'; the
    outcomes job's own 1 h scores (gold.model_scores) as markers when given."""
    x = tx(r["target_time"])
    data = _band(x, r[f"{metric}_lo"], r[f"{metric}_hi"], "model 95% band", "rgba(31,119,180,0.18)")
    data.append({"type": "scatter", "x": x, "y": arr(r[metric]), "name": "model", "mode": "lines",
                 "line": {"color": "#1f77b4", "width": 2}})
    for b, color in (("climatology", "#ff7f0e"), ("momentum", "#9467bd")):
        data.append({"type": "scatter", "x": x, "y": arr(r[f"{b}_{metric}"]), "name": b, "mode": "lines",
                     "line": {"color": color, "width": 1, "dash": "dot"}})
    if scores is not None and not scores.empty and len(r):
        # Scores are stamped with the wall clock (computed_at): shown only where that falls on the
        # outcomes' own time range (a live run), not for a replay of past days.
        t = pd.to_datetime(scores["computed_at"], utc=True, cache=False)
        lo, hi = pd.to_datetime(r["target_time"], utc=True, cache=False).min(), pd.to_datetime(r["target_time"], utc=True, cache=False).max()
        scores = scores[(t >= lo) & (t <= hi + pd.Timedelta(hours=1))]
    if scores is not None and not scores.empty:
        sc = _thin(scores.sort_values("computed_at"), 1_500)
        col = "accuracy" if metric == "hit" else "brier"
        data.append({"type": "scatter", "x": tx(sc["computed_at"]), "y": arr(sc[col]), "mode": "markers",
                     "name": "gold.model_scores (1 h)", "marker": {"size": 4, "color": "#17becf"}})
    ytitle = "hit rate" if metric == "hit" else "Brier score (lower is better)"
    return {"data": data, "layout": _layout(title, uirevision, 320, ytitle,
                                            shapes=[_hline(0.5)] if metric == "hit" else [])}


def cumulative_figure(c: pd.DataFrame, title: str, uirevision: str) -> dict:
    x = tx(c["target_time"])
    data = [{"type": "scatter", "x": x, "y": arr(c[m]), "name": m, "mode": "lines",
             "line": {"width": 2 if m == "model" else 1, "dash": "solid" if m == "model" else "dot"}}
            for m in ("model", "climatology", "momentum")]
    return {"data": data, "layout": _layout(title, uirevision, 300, "cumulative hit rate")}


def calibration_figure(c: pd.DataFrame, title: str, uirevision: str) -> dict:
    data = [
        {"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "name": "perfectly calibrated",
         "line": {"color": "#bbb", "dash": "dash"}},
        {"type": "scatter", "x": arr(c["predicted"]), "y": arr(c["observed"]), "mode": "markers+lines", "name": "model",
         "error_y": {"type": "data", "symmetric": False, "array": arr(c["hi"] - c["observed"]),
                     "arrayminus": arr(c["observed"] - c["lo"])},
         "customdata": arr(c["n"]), "hovertemplate": "predicted %{x:.3f}<br>observed %{y:.3f}<br>n %{customdata}"
                                                     "<extra></extra>"},
    ]
    layout = _layout(title, uirevision, 320, "observed share up", xaxis={"title": {"text": "predicted P(up)"}},
                     legend={"orientation": "h", "y": -0.25})
    return {"data": data, "layout": layout}


def latest_drift(drift: pd.DataFrame, model_version: str) -> pd.DataFrame:
    """The newest drift batch of a model version: one row per feature, most drifted first."""
    d = drift[drift["model_version"] == model_version] if not drift.empty else drift
    if d.empty:
        return d
    d = d[d["batch_id"] == d.loc[d["computed_at"].idxmax(), "batch_id"]]
    return d.sort_values("psi", ascending=False, na_position="last")


def drift_figure(d: pd.DataFrame, threshold: float, title: str, uirevision: str) -> dict:
    """PSI per feature (red above the threshold), with the threshold as a line."""
    psi = d["psi"].to_numpy(float)
    colors = [DOWN if v > threshold else "#1f77b4" for v in np.nan_to_num(psi)]
    data = [{"type": "bar", "x": d["feature"].tolist(), "y": arr(psi), "marker": {"color": colors}, "name": "PSI",
             "customdata": arr(d["ks"]), "hovertemplate": "%{x}<br>PSI %{y:.3f}<br>KS %{customdata:.3f}<extra></extra>"}]
    layout = _layout(title, uirevision, 320, "PSI vs training", xaxis={"type": "category"},
                     margin={"l": 60, "r": 20, "t": 40, "b": 90},
                     shapes=[_hline(threshold, color=DOWN, dash="dash")], annotations=[_note(threshold, f"threshold {threshold:g}")])
    return {"data": data, "layout": layout}


# ---------------------------------------------------------------- pipeline health

def progress_series(progress: pd.DataFrame) -> pd.DataFrame:
    """ops.stream_progress rows with derived columns: batch seconds and lag in seconds (the
    backlog at the query's input rate: messages behind / input rows per second)."""
    p = progress.sort_values("timestamp", kind="stable").copy()
    p["batch_seconds"] = p["batch_duration_ms"].astype(float) / 1000
    rate = p["input_rows_per_second"].astype(float)
    lag = p["lag"].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p["lag_seconds"] = np.where(lag.isna(), np.nan, np.where(lag == 0, 0.0, lag / rate.where(rate > 0)))
    return p


def history_figure(p: pd.DataFrame, column: str, title: str, ytitle: str, uirevision: str,
                   threshold: float | None = None, max_points: int = 1_500) -> dict:
    """One line per streaming query of `column` over time; the alert threshold as a red line."""
    data = []
    for q, g in p.groupby("query_name", sort=True):
        g = _thin(g[["timestamp", column]].dropna(), max_points)
        data.append({"type": "scatter", "x": tx(g["timestamp"]), "y": arr(g[column]), "mode": "lines+markers",
                     "marker": {"size": 3}, "name": str(q)})
    extra = {}
    if threshold is not None:
        extra = {"shapes": [_hline(threshold, color=DOWN, dash="dash")],
                 "annotations": [_note(threshold, f"alert {threshold:g}")]}
    return {"data": data, "layout": _layout(title, uirevision, 280, ytitle, **extra)}


def stage_commits(files: pd.DataFrame, time_col: str = "window_start", since=None) -> pd.DataFrame:
    """A table's commits per minute from its add actions: for each file holding ONE minute (a live
    batch's file), that minute and the file's write time; the latest write wins per minute.

    Files spanning several minutes (a catch-up, a backfill, a compaction) say nothing about when a
    minute became visible, so they are left out. `since`: only minutes from then on.
    """
    lo, hi = f"min.{time_col}", f"max.{time_col}"
    if files is None or files.empty or lo not in files or hi not in files:
        return pd.DataFrame(columns=["minute", "committed"])
    one = files[files[lo].notna() & (files[lo] == files[hi])]
    if since is not None:
        one = one[one[hi] >= since]
    g = one.groupby(hi)["modification_time"].max()
    return pd.DataFrame({"minute": pd.to_datetime(g.index, utc=True, cache=False), "committed": g.to_numpy()})


def freshness(stages: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Seconds from each bar's end (minute + 1 min) to its commit in each stage.

    Args:
        stages: stage name (bars, features, predictions) -> `stage_commits` frame.
    Returns:
        minute, and one column of seconds per stage (NaN where the stage has no one-minute file).
    """
    out = None
    for name, c in stages.items():
        f = pd.DataFrame({"minute": pd.to_datetime(c["minute"], utc=True, cache=False),
                          name: (pd.to_datetime(c["committed"], utc=True, cache=False) - pd.to_datetime(c["minute"], utc=True, cache=False)
                                 - pd.Timedelta(minutes=1)).dt.total_seconds()})
        out = f if out is None else out.merge(f, on="minute", how="outer")
    if out is None:
        return pd.DataFrame(columns=["minute"])
    return out.sort_values("minute").reset_index(drop=True)


def freshness_figure(f: pd.DataFrame, threshold: float, uirevision: str, max_points: int = 1_500) -> dict:
    f = _thin(f, max_points)
    x = tx(f["minute"])
    data = [{"type": "scatter", "x": x, "y": arr(f[c]), "mode": "lines+markers", "marker": {"size": 3},
             "name": f"bar end → {c} commit"} for c in f.columns if c != "minute"]
    layout = _layout("Freshness per stage (seconds after the bar's end)", uirevision, 300, "seconds",
                     shapes=[_hline(threshold, color=DOWN, dash="dash")],
                     annotations=[_note(threshold, f"alert {threshold:g} s")])
    return {"data": data, "layout": layout}
