"""Backtest scores on a synthetic replay (no models): intervals, the strategy book, the gate's record,
gold.backtest rows and the page's figures, compared with values computed here by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import figures_backtest as fb
from tickcast import tables
from tickcast.backtest import output, scores
from tickcast.backtest.replay import Replay
from tickcast.timeunits import MINUTE_MS as MIN

PERIOD = 600


def replay(seed: int = 0, edge: float = 0.0) -> Replay:
    """Two symbols, three periods of 600 minutes; period 0 serves nothing, 1 and 2 serve v2."""
    rng = np.random.default_rng(seed)
    parts = []
    for sym in ("A", "B"):
        n = 3 * PERIOD
        y = rng.normal(0, 1e-3, n)
        p = np.clip(0.5 + edge * np.sign(y) + rng.normal(0, 0.05, n), 0.01, 0.99)
        parts.append(pd.DataFrame({"symbol": sym, "window_ms": np.arange(n) * MIN, "period": np.arange(n) // PERIOD,
                                   "label_return": y, "minute_return": y, "prob_up": p, "candidate_prob_up": p,
                                   "climatology_prob_up": 0.5, "momentum_prob_up": 0.5 + rng.normal(0, 0.01, n)}))
    rows = pd.concat(parts).sort_values(["window_ms", "symbol"]).reset_index(drop=True)
    rows.loc[rows["period"] == 0, "prob_up"] = np.nan
    rows["served_version"] = np.where(rows["period"] == 0, None, "2")
    recs = []
    for k in range(3):
        recs.append({"period": k, "start_ms": k * PERIOD * MIN, "end_ms": (k + 1) * PERIOD * MIN,
                     "train_start_ms": k * PERIOD * MIN - 1440 * MIN, "train_end_ms": k * PERIOD * MIN - MIN,
                     "candidate": str(k + 1), "candidate_family": "linear", "promoted": k == 1,
                     "gate": "promoted" if k == 1 else "not promoted", "gate_reason": "because",
                     "served": None if k == 0 else "2", "served_family": None if k == 0 else "linear",
                     "served_training_end_ms": None if k == 0 else PERIOD * MIN - MIN})
    return Replay(recs, rows, ["A", "B"], "fv", 0, 3 * PERIOD * MIN)


def test_scores_per_period_equal_hand_computed_values():
    rep = replay(edge=0.03)
    res = scores.summarise(rep, horizon=1, threshold=0.5, fee_bps=10, reps=200, seed=0)
    p0, p1 = res["periods"][0], res["periods"][1]
    assert p0["scores"]["model"] is None and p0["scores"]["rows"] == 2 * PERIOD     # baselines on every row
    rows1 = rep.rows[rep.rows["period"] == 1]
    d = rows1["label_return"] != 0
    acc = np.mean((rows1["prob_up"][d] > 0.5) == (rows1["label_return"][d] > 0))
    brier = np.mean((rows1["prob_up"][d] - (rows1["label_return"][d] > 0)) ** 2)
    m = p1["scores"]["model"]
    assert m["accuracy"]["value"] == pytest.approx(acc) and m["brier"]["value"] == pytest.approx(brier)
    assert m["accuracy"]["lo"] < acc < m["accuracy"]["hi"]
    assert p1["scores"]["climatology"]["brier"]["value"] == pytest.approx(0.25)
    assert p1["candidate_beat_baselines"] is True
    # The gate: period 1 promoted a model that beat the baselines; 0 and 2 refused ones that would have.
    g = res["overall"]["gate"]
    assert (g["promoted_beat"], g["refused_would_have_beaten"], g["right"], g["judged"]) == (1, 2, 1, 3)


def test_strategy_book_is_the_mean_of_the_symbols_and_fees_are_charged_per_change():
    rep = replay(seed=1)
    res = scores.summarise(rep, horizon=1, threshold=0.5, fee_bps=10, reps=200, seed=0)
    cost = -np.log(1 - 1e-3)
    net, fees, changes = 0.0, 0.0, 0
    for _, g in rep.rows.sort_values("window_ms").groupby("symbol"):
        pos = np.where(g["prob_up"].isna(), 0, g["prob_up"] > 0.5).astype(float)
        ch = np.abs(np.diff(np.concatenate([[0], pos, [0]]))).sum()
        changes += int(ch)
        fees += ch * cost / 2
        net += (pos * g["minute_return"]).sum() / 2 - ch * cost / 2
    st = res["overall"]["strategy"]
    assert st["changes"] == changes
    assert np.log1p(st["net"]["value"]) == pytest.approx(net)
    assert st["fees"] == pytest.approx(-np.expm1(-fees))
    assert sum(np.log1p(p["strategy"]["net"]["value"]) for p in res["periods"]) == pytest.approx(net)
    assert res["periods"][0]["strategy"]["changes"] == 0            # nothing served: flat
    assert "only loses the fees" in st["verdict"]                    # no signal here


def test_table_rows_and_page_figures_carry_the_scores():
    rep = replay(edge=0.1)
    res = scores.summarise(rep, horizon=1, threshold=0.5, fee_bps=10, reps=200, seed=0)
    result = {"config": {"horizon": 1, "symbols": "A,B", "fee_bps": 10.0, "threshold": 0.5, "start": "s", "end": "e",
                         "window": "1d", "retrain_every": "10h", "candidates": "linear"}, **res, "seconds": 1.0}
    t = output.table_rows(result, "run1", 10**12)
    assert t.schema.names == tables.BACKTEST.schema.names
    df = t.to_pandas()
    assert df["accuracy"].isna().tolist() == [True, False, False]
    assert df.loc[1, "accuracy"] == pytest.approx(res["periods"][1]["scores"]["model"]["accuracy"]["value"])
    df["period_start"] = pd.to_datetime(df["period_start"], utc=True)
    df["period_end"] = pd.to_datetime(df["period_end"], utc=True)
    df["computed_at"] = pd.to_datetime(df["computed_at"], utc=True)
    (run,) = fb.runs(df)
    assert run["run_id"] == "run1" and run["periods"] == 3
    fig = fb.accuracy_figure(fb.one_run(df, "run1"), "t", "u")
    model = fig["data"][0]
    assert model["y"][0] is None and model["y"][1] == pytest.approx(df.loc[1, "accuracy"])
    assert model["text"] == ["nothing", "v2 (linear)", "v2 (linear)"]
    cum = fb.cumulative_figure(fb.one_run(df, "run1"), "t", "u")["data"][0]["y"]
    assert cum[-1] == pytest.approx(np.prod(1 + df["strategy_return"]) - 1)
    md = output.markdown(result)
    assert res["overall"]["strategy"]["verdict"] in md and "v2 (linear)" in md
