"""Scores of a replay, per period and overall, with 95% block-bootstrap intervals: the served model
against climatology and momentum on the same rows, the gate's record, the strategy after fees."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tickcast import evaluation
from tickcast.backtest.pure import beat_baselines, buy_and_hold, gate_tally, strategy, strategy_verdict
from tickcast.evaluation import Bootstrap, Sample

MODELS = ("model", "climatology", "momentum")
COLUMN = {"model": "prob_up", "climatology": "climatology_prob_up", "momentum": "momentum_prob_up"}


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    d = (y != 0) & np.isfinite(p)
    return float(np.mean((p[d] - (y[d] > 0)) ** 2)) if d.any() else float("nan")


def forecast_scores(rows: pd.DataFrame, horizon: int, reps: int, seed: int) -> dict:
    """Accuracy and Brier (value, lo, hi) of the served model and both baselines on the same rows:
    the rows a model served, or every row when none did (then the model's are None)."""
    served = rows["prob_up"].notna().to_numpy()
    use = rows[served] if served.any() else rows
    use = use[use[list(COLUMN.values())[1:]].notna().all(axis=1)]
    out = {"rows": int(len(use)), "served_rows": int(served.sum())}
    if use.empty:
        return {**out, **{m: None for m in MODELS}}
    ms = use["window_ms"].to_numpy(np.int64)
    minutes = np.unique(ms)
    boot = Bootstrap(len(minutes), evaluation.block_length(horizon), reps, seed)
    y = use["label_return"].to_numpy(float)
    for m in MODELS:
        if m == "model" and not served.any():
            out[m] = None
            continue
        p = use[COLUMN[m]].to_numpy(float)
        mt = evaluation.metrics_with_ci(Sample(np.searchsorted(minutes, ms), p, np.zeros(len(p)), y), boot)
        out[m] = {k: mt[k] for k in ("accuracy", "brier")}
    return out


def _interval(per_minute: np.ndarray, horizon: int, reps: int, seed: int) -> dict:
    """The total of per-minute log returns as a simple return, with its block-bootstrap interval."""
    if len(per_minute) == 0:
        return {"value": 0.0, "lo": 0.0, "hi": 0.0}
    boot = Bootstrap(len(per_minute), evaluation.block_length(horizon), reps, seed)
    tot = boot.resample(lambda r: {"t": r["x"].sum(axis=-1)}, {"x": per_minute})["t"]
    a = (1 - evaluation.LEVEL) / 2
    return {"value": float(np.expm1(per_minute.sum())), "lo": float(np.expm1(np.quantile(tot, a))),
            "hi": float(np.expm1(np.quantile(tot, 1 - a)))}


def strategy_minutes(rows: pd.DataFrame, threshold: float, fee_bps: float) -> pd.DataFrame:
    """Per minute of the range: the strategy's position, gross and fee log returns and buy-and-hold,
    each the mean over the symbols (an equal-weight book), with the minute's period."""
    parts = []
    for _, g in rows.sort_values(["symbol", "window_ms"]).groupby("symbol", sort=False):
        st = strategy(g["prob_up"].to_numpy(float), g["minute_return"].to_numpy(float), threshold, fee_bps)
        parts.append(pd.DataFrame({"window_ms": g["window_ms"].to_numpy(), "period": g["period"].to_numpy(),
                                   "position": st.position, "gross": st.gross, "fees": st.fees,
                                   "change": st.fees > 0,
                                   "buy_hold": buy_and_hold(g["minute_return"].to_numpy(float), fee_bps)}))
    n_sym = max(1, rows["symbol"].nunique())
    cols = ["position", "gross", "fees", "buy_hold"]
    if not parts:
        return pd.DataFrame(columns=["window_ms", "period", *cols, "changes"])
    df = pd.concat(parts)
    out = df.groupby("window_ms").agg(period=("period", "first"), changes=("change", "sum"),
                                      **{c: (c, "sum") for c in cols}).reset_index()
    out[cols] = out[cols] / n_sym
    return out


def strategy_scores(minutes: pd.DataFrame, horizon: int, reps: int, seed: int) -> dict:
    """The strategy's net and gross returns with intervals, fees, buy-and-hold, and the verdict."""
    net = (minutes["gross"] - minutes["fees"]).to_numpy(float)
    gross = minutes["gross"].to_numpy(float)
    out = {"net": _interval(net, horizon, reps, seed), "gross": _interval(gross, horizon, reps, seed),
           "fees": float(-np.expm1(-minutes["fees"].sum())), "changes": int(minutes["changes"].sum()),
           "exposure": float(minutes["position"].mean()) if len(minutes) else 0.0,
           "buy_hold": float(np.expm1(minutes["buy_hold"].sum())), "flat": 0.0}
    out["verdict"] = strategy_verdict(out["net"], out["gross"], out["buy_hold"], out["fees"], out["changes"])
    return out


def summarise(replay, horizon: int, threshold: float, fee_bps: float, reps: int, seed: int) -> dict:
    """Per-period and overall scores of a replay, and the gate's record."""
    rows = replay.rows
    minutes = strategy_minutes(rows, threshold, fee_bps)
    out_periods, decisions = [], []
    for rec in replay.periods:
        pr = rows[rows["period"] == rec["period"]]
        fc = forecast_scores(pr, horizon, reps, seed)
        st = strategy_scores(minutes[minutes["period"] == rec["period"]], horizon, reps, seed)
        y = pr["label_return"].to_numpy(float)
        beat = None
        if rec.get("candidate") is not None and len(pr):
            beat = beat_baselines(_brier(pr["candidate_prob_up"].to_numpy(float), y),
                                  {b: _brier(pr[f"{b}_prob_up"].to_numpy(float), y) for b in ("climatology", "momentum")})
            decisions.append((rec["promoted"], beat))
        first = int(pr["window_ms"].min()) if len(pr) else None
        out_periods.append({**rec, "rows": int(len(pr)), "first_scored_ms": first, "candidate_beat_baselines": beat,
                            "scores": fc, "strategy": st})
    overall = {"scores": forecast_scores(rows[rows["period"] >= 0], horizon, reps, seed),
               "strategy": strategy_scores(minutes, horizon, reps, seed), "gate": gate_tally(decisions)}
    return {"periods": out_periods, "overall": overall}
