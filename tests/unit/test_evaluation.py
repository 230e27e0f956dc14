"""Labels, walk-forward folds, metrics and the gate's comparison (pure numpy, no JVM)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tickcast import dataset, evaluation
from tickcast.evaluation import Bootstrap, Sample

from tickcast.timeunits import MINUTE_MS as MIN


def test_labels_never_span_a_gap():
    m = np.array([0, 1, 2, 3, 5, 6, 7, 8])
    c = np.exp(np.arange(len(m)) * 0.01)
    bars = pd.DataFrame({"symbol": "X", "window_ms": m * MIN, "close": c})
    lab = dataset.labels(bars, 2)
    assert list(lab["window_ms"] // MIN) == [0, 1, 5, 6]           # 2 -> 4 and 3 -> 5 cross the hole at 4
    np.testing.assert_allclose(lab["label_return"], [0.02, 0.02, 0.02, 0.02])


def test_walk_forward_folds_expand_and_purge():
    ms = np.arange(10_000) * MIN
    h = 15
    folds = dataset.walk_forward(ms, h, folds=4, initial=0.5)
    assert len(folds) == 4
    prev_train = 0
    for f in folds:
        tr, te = f.train_mask(ms, h), f.test_mask(ms)
        assert te.any() and tr.any()
        # Every training label ends at least h minutes before the first test row.
        assert (ms[tr] + h * MIN).max() <= ms[te].min() - h * MIN
        assert tr.sum() > prev_train                                # expanding
        prev_train = tr.sum()
    tested = np.zeros(len(ms), int)
    for f in folds:
        tested += f.test_mask(ms)
    assert tested.max() == 1 and tested[ms >= folds[0].test_start_ms].min() == 1


def _sample(p, y, seed=0):
    n = len(y)
    return Sample(np.arange(n), np.asarray(p, float), np.zeros(n), np.asarray(y, float))


def test_metrics_match_direct_formulas():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1e-3, 500)
    y[::50] = 0.0
    p = rng.uniform(0.3, 0.7, 500)
    s = Sample(np.arange(500), p, rng.normal(0, 1e-3, 500), y)
    m = evaluation.metrics_with_ci(s, Bootstrap(500, 60, 200))
    d = y != 0
    assert m["brier"]["value"] == pytest.approx(np.mean((p[d] - (y[d] > 0)) ** 2))
    assert m["accuracy"]["value"] == pytest.approx(np.mean((p[d] > 0.5) == (y[d] > 0)))
    assert m["mae"]["value"] == pytest.approx(np.mean(np.abs(s.pred_return - y)))
    sst = np.sum((y - y.mean()) ** 2)
    assert m["r2"]["value"] == pytest.approx(1 - np.sum((s.pred_return - y) ** 2) / sst)
    for v in m.values():
        assert v["lo"] <= v["value"] <= v["hi"]


def test_a_tie_never_passes_and_a_real_edge_does():
    rng = np.random.default_rng(2)
    n = 20_000
    x = rng.normal(size=n)
    y = rng.normal(size=n) + 0.3 * x                   # x predicts the sign
    informed = 1 / (1 + np.exp(-0.5 * x))
    boot = Bootstrap(n, 60, 300)
    same = evaluation.compare(_sample(informed, y), _sample(informed, y), "itself", boot)
    assert same.improvement == 0 and not same.passed
    clim = _sample(np.full(n, 0.5), y)
    assert evaluation.compare(_sample(informed, y), clim, "climatology", boot).passed
    assert not evaluation.compare(clim, _sample(informed, y), "informed", boot).passed
    noise = _sample(rng.uniform(0.45, 0.55, n), y)
    assert not evaluation.compare(noise, clim, "climatology", boot).passed


def test_block_bootstrap_is_wider_than_iid_on_clustered_errors():
    rng = np.random.default_rng(3)
    n = 6000
    # Errors that persist for an hour: i.i.d. resampling would understate the uncertainty.
    level = np.repeat(rng.normal(size=n // 60), 60)
    y = level + 0.1 * rng.normal(size=n)
    s = Sample(np.arange(n), np.full(n, 0.5), np.zeros(n), y)
    wide = evaluation.metrics_with_ci(s, Bootstrap(n, 60, 300))["mae"]
    narrow = evaluation.metrics_with_ci(s, Bootstrap(n, 1, 300))["mae"]
    assert (wide["hi"] - wide["lo"]) > 3 * (narrow["hi"] - narrow["lo"])


def _evaluation(probs: dict, y: np.ndarray, reps: int = 300):
    """An Evaluation of given out-of-sample predictions (one row per minute)."""
    from tickcast import training

    n = len(y)
    samples = {m: _sample(p, y) for m, p in probs.items()}
    boot = Bootstrap(n, 60, reps)
    overall = {m: evaluation.metrics_with_ci(s, boot) for m, s in samples.items()}
    return training.Evaluation({"overall": overall}, samples, np.ones(n, bool), boot)


def _informed_world(n=30_000, seed=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.normal(size=n) + 0.3 * x
    good = 1 / (1 + np.exp(-0.5 * x))
    return rng, y, {"climatology": np.full(n, 0.5), "momentum": np.clip(0.5 + 0.01 * rng.normal(size=n), 0, 1),
                    "linear": good, "mlp": np.clip(good + 0.002 * rng.normal(size=n), 0, 1),
                    "conv": np.full(n, 0.5)}


def test_the_gate_promotes_the_best_brier_that_beats_both_baselines_and_says_why_the_others_lose():
    from tickcast import training

    _, y, probs = _informed_world()
    cfg = training.TrainConfig(horizon=1, bootstrap_reps=300)
    g = training.gate(_evaluation(probs, y), cfg)
    o = {m: np.mean(((p - (y > 0)) ** 2)) for m, p in probs.items()}
    assert g["best"] == min(training.CANDIDATES, key=o.get) and g["promoted"], g["decision"]
    assert g["decision"].startswith(f"{g['best']} is promoted to champion")
    for f in training.CANDIDATES:
        if f != g["best"]:
            assert g["reasons"][f].startswith("walk-forward Brier") and "worse than" in g["reasons"][f]
    assert all(c["passed"] for c in g["checks"])


def test_the_gate_refuses_when_a_baseline_is_not_beaten_or_a_leak_or_the_champion_is_better():
    from tickcast import training
    from tickcast.evaluation import Comparison

    rng, y, probs = _informed_world()
    cfg = training.TrainConfig(horizon=1, bootstrap_reps=300)
    # Noise only: nothing beats climatology significantly.
    noise = {m: np.clip(0.5 + 0.01 * rng.normal(size=len(y)), 0, 1) for m in probs}
    g = training.gate(_evaluation(noise, y), cfg)
    assert not g["promoted"] and g["decision"].startswith("Nothing is promoted")
    assert "does not beat climatology" in g["decision"] or "does not beat momentum" in g["decision"]
    # A leak: 60% direction accuracy is not believable at these horizons.
    g = training.gate(_evaluation(probs, y), dataclasses.replace(cfg, leak_accuracy=0.55))
    assert not g["promoted"] and "treated as a leak" in g["decision"]
    # The current champion significantly better on rows after its training end blocks the promotion.
    better = Comparison("linear (by champion v1)", 0.01, 0.005, 0.02, 1000, True)
    g = training.gate(_evaluation(probs, y), cfg, better)
    assert not g["promoted"] and "significantly better on rows after its training end" in g["decision"]
    tie = Comparison("linear (by champion v1)", 0.0, -0.01, 0.01, 1000, False)
    assert training.gate(_evaluation(probs, y), cfg, tie)["promoted"]
