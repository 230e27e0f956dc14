"""Pure figure builders of the backtest page (gold.backtest rows of one run -> Plotly figure dicts)."""
from __future__ import annotations

import numpy as np
import pandas as pd

COLORS = {"model": "#1f77b4", "climatology": "#7f7f7f", "momentum": "#ff7f0e", "strategy": "#2ca02c",
          "buy_hold": "#9467bd", "flat": "#bbbbbb"}


def runs(df: pd.DataFrame) -> list[dict]:
    """The recorded runs, newest first: {run_id, horizon, computed_at, periods, label}."""
    if df.empty:
        return []
    g = (df.groupby(["run_id", "horizon"], as_index=False)
           .agg(computed_at=("computed_at", "max"), periods=("period", "count"), start=("period_start", "min"),
                end=("period_end", "max"), symbols=("symbols", "first"))
           .sort_values("computed_at", ascending=False))
    return [{"run_id": r.run_id, "horizon": int(r.horizon), "computed_at": r.computed_at, "periods": int(r.periods),
             "label": f"h{r.horizon} · {r.symbols} · {r.start:%Y-%m-%d} .. {r.end:%Y-%m-%d} · {r.periods} periods · "
                      f"run {r.run_id[:8]} ({r.computed_at:%Y-%m-%d %H:%M} UTC)"} for r in g.itertuples()]


def one_run(df: pd.DataFrame, run_id: str) -> pd.DataFrame:
    return df[df["run_id"] == run_id].sort_values("period").reset_index(drop=True)


def served_label(r) -> str:
    return f"v{r['served_version']} ({r['served_family']})" if isinstance(r["served_version"], str) else "nothing"


def _err(r: pd.DataFrame, col: str) -> dict:
    return {"type": "data", "symmetric": False, "array": (r[f"{col}_hi"] - r[col]).tolist(),
            "arrayminus": (r[col] - r[f"{col}_lo"]).tolist(), "visible": True}


def accuracy_figure(r: pd.DataFrame, title: str, uirevision: str) -> dict:
    """Per period: the served model's accuracy with its 95% interval, and the baselines' on the same rows.

    A period that served nothing has no model point; its x label says `nothing`.
    """
    x = [f"{t:%Y-%m-%d %H:%M}" for t in r["period_start"]]
    served = [served_label(row) for _, row in r.iterrows()]
    traces = [{"type": "scatter", "mode": "markers", "name": "served model", "x": x,
               "y": [None if pd.isna(v) else float(v) for v in r["accuracy"]], "error_y": _err(r, "accuracy"),
               "text": served, "hovertemplate": "%{x}<br>%{text}: %{y:.2%}<extra></extra>",
               "marker": {"color": COLORS["model"], "size": 9}}]
    for b in ("climatology", "momentum"):
        traces.append({"type": "scatter", "mode": "lines+markers", "name": b, "x": x,
                       "y": [None if pd.isna(v) else float(v) for v in r[f"{b}_accuracy"]],
                       "line": {"color": COLORS[b], "dash": "dot"}, "marker": {"size": 5},
                       "hovertemplate": f"%{{x}}<br>{b}: %{{y:.2%}}<extra></extra>"})
    return {"data": traces, "layout": {
        "title": {"text": title}, "height": 360, "uirevision": uirevision, "hovermode": "x unified",
        "yaxis": {"title": {"text": "direction accuracy"}, "tickformat": ".0%"},
        "xaxis": {"type": "category", "title": {"text": "period start (UTC)"}},
        "legend": {"orientation": "h", "y": -0.3},
        "annotations": [{"x": xi, "y": 1.0, "yref": "paper", "text": s, "showarrow": False, "yanchor": "bottom",
                         "font": {"size": 10, "color": "#555"}} for xi, s in zip(x, served)]}}


def cumulative(r: pd.DataFrame) -> pd.DataFrame:
    """Cumulative simple returns at each period's end: the strategy after fees, buy-and-hold, flat."""
    return pd.DataFrame({"period_end": r["period_end"],
                         "strategy": np.cumprod(1 + r["strategy_return"].to_numpy(float)) - 1,
                         "buy_hold": np.cumprod(1 + r["buy_hold_return"].to_numpy(float)) - 1,
                         "flat": np.zeros(len(r))})


def cumulative_figure(r: pd.DataFrame, title: str, uirevision: str) -> dict:
    c = cumulative(r)
    x = [f"{t:%Y-%m-%d %H:%M}" for t in c["period_end"]]
    names = {"strategy": "strategy after fees", "buy_hold": "buy-and-hold", "flat": "flat"}
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": names[k], "x": x, "y": c[k].tolist(),
                      "line": {"color": COLORS[k], "dash": "dot" if k == "flat" else "solid"},
                      "hovertemplate": f"%{{x}}<br>{names[k]}: %{{y:.2%}}<extra></extra>"}
                     for k in ("strategy", "buy_hold", "flat")],
            "layout": {"title": {"text": title}, "height": 340, "uirevision": uirevision, "hovermode": "x unified",
                       "yaxis": {"title": {"text": "cumulative return"}, "tickformat": ".1%"},
                       "xaxis": {"type": "category", "title": {"text": "period end (UTC)"}},
                       "legend": {"orientation": "h", "y": -0.3}}}


def period_rows(r: pd.DataFrame) -> list[dict]:
    """The periods table's cells, as text."""
    def iv(row, col):
        return "–" if pd.isna(row[col]) else f"{row[col]:.2%} [{row[col + '_lo']:.2%}, {row[col + '_hi']:.2%}]"
    return [{"period": int(row["period"]), "start": f"{row['period_start']:%Y-%m-%d %H:%M}",
             "gate": row["gate"] + (f" ({row['candidate_family']})" if isinstance(row["candidate_family"], str) else ""),
             "served": served_label(row), "accuracy": iv(row, "accuracy"),
             "climatology": iv(row, "climatology_accuracy"), "momentum": iv(row, "momentum_accuracy"),
             "strategy": iv(row, "strategy_return"), "buy-and-hold": f"{row['buy_hold_return']:.2%}",
             "reason": row["gate_reason"] or ""} for _, row in r.iterrows()]
