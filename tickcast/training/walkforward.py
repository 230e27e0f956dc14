"""Walk-forward evaluation: every candidate and baseline fitted on expanding training windows and
scored on the same out-of-sample test blocks, with block-bootstrap intervals."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickcast import dataset, evaluation, features, modeling
from tickcast.evaluation import Bootstrap, Sample
from tickcast.training.config import BASELINES, CANDIDATES, TrainConfig, TrainingError, iso
from tickcast.timeunits import DAY_MS

WEEKLY = ("dow_sin", "dow_cos")
MIN_DAYS_FOR_WEEKLY = 28


def model_features(data: pd.DataFrame) -> list[str]:
    """The summary features a training window can support: day-of-week needs weeks of history.

    With a few days, a test block's weekday is a value the model never saw, and a network
    extrapolates it wildly (measured: Brier 0.26 vs 0.25 on 3 simulated days). The model's
    signature and meta say which features it takes.
    """
    span_days = (int(data["window_ms"].max()) - int(data["window_ms"].min())) / DAY_MS if len(data) else 0
    return [f for f in features.FEATURES if span_days >= MIN_DAYS_FOR_WEEKLY or f not in WEEKLY]


def inputs(family: str, data: pd.DataFrame) -> list[str]:
    """The silver.features columns a family takes (its model's signature, in order)."""
    summary = model_features(data)
    return summary + list(features.HISTORY) if family == "conv" else summary


def fit(family: str, X: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> modeling.Fitted:
    if family == "linear":
        return modeling.linear_keras(X, y, cfg.seed)
    if family == "mlp":
        return modeling.mlp(X, y, cfg.mlp)
    if family == "conv":
        return modeling.conv(X, y, cfg.conv, channels=len(features.HISTORY_CHANNELS), history=len(features.HISTORY))
    raise TrainingError(f"unknown candidate family {family!r}; known: {', '.join(CANDIDATES)}")


def fit_baselines(X: np.ndarray, y: np.ndarray, names: list[str], cfg: TrainConfig) -> dict[str, modeling.Fitted]:
    return {"climatology": modeling.climatology(X, y), "momentum": modeling.momentum(X, y, names, cfg.seed)}


@dataclass
class Evaluation:
    report: dict
    samples: dict[str, Sample]         # model -> overall out-of-sample predictions
    test_mask: np.ndarray              # rows of the data that were tested
    boot: Bootstrap


def _sample(ms: np.ndarray, minutes: np.ndarray, p, r, y) -> Sample:
    return Sample(np.searchsorted(minutes, ms), np.asarray(p, float), np.asarray(r, float), np.asarray(y, float))


def _groups(names: list[str]) -> dict[str, list[int]]:
    """Permutation groups: each summary feature alone, each history channel as one group."""
    out: dict[str, list[int]] = {}
    for j, n in enumerate(names):
        key = n
        for c, _ in features.HISTORY_CHANNELS:
            if n.startswith(c + "_") and n in features.HISTORY:
                key = f"{c}_* (last {features.HISTORY_BARS} min)"
        out.setdefault(key, []).append(j)
    return out


def permutation_importance(predict, X: np.ndarray, y: np.ndarray, names: list[str], rng) -> dict[str, tuple[float, int]]:
    """Brier increase when a feature (group) is shuffled across the test rows: {group: (sum, rows)}."""
    d = y != 0
    X, y = X[d], (y[d] > 0).astype(float)
    if len(y) == 0:
        return {}
    base = np.mean((predict(X)[0] - y) ** 2)
    out = {}
    for g, cols in _groups(names).items():
        Z = X.copy()
        Z[:, cols] = Z[rng.permutation(len(Z))][:, cols]
        out[g] = (float(np.mean((predict(Z)[0] - y) ** 2) - base) * len(y), len(y))
    return out


def evaluate(data: pd.DataFrame, cfg: TrainConfig, echo=lambda *_: None) -> Evaluation:
    """Fit every model on each fold's training rows; score on its test block; metrics with intervals."""
    summary = model_features(data)
    y = data["label_return"].to_numpy(float)
    if cfg.shuffle_labels:
        y = np.random.default_rng(cfg.seed).permutation(y)
    ms = data["window_ms"].to_numpy(np.int64)
    folds = dataset.walk_forward(ms, cfg.horizon, cfg.folds, cfg.initial)
    cols = {f: inputs(f, data) for f in cfg.families}
    X = {f: data[c].to_numpy(np.float32) for f, c in cols.items()}
    Xs = data[summary].to_numpy(float)
    models = (*cfg.families, *BASELINES)
    prob = {m: np.full(len(y), np.nan) for m in models}
    ret = {m: np.full(len(y), np.nan) for m in models}
    imp = {f: {} for f in cfg.families}
    rng = np.random.default_rng(cfg.seed)
    fold_reports = []
    tested = np.zeros(len(y), bool)
    for f in folds:
        tr, te = f.train_mask(ms, cfg.horizon), f.test_mask(ms)
        if tr.sum() < 200 or te.sum() == 0:
            raise TrainingError(f"fold {f.number}: {int(tr.sum())} training and {int(te.sum())} test rows; "
                                "need more history (or fewer folds)")
        seconds, info = {}, {}
        for b, fm in fit_baselines(Xs[tr], y[tr], summary, cfg).items():
            prob[b][te], ret[b][te] = fm.predict(Xs[te])
        for fam in cfg.families:
            t0 = time.monotonic()
            fm = fit(fam, X[fam][tr], y[tr], cfg)
            prob[fam][te], ret[fam][te] = fm.predict(X[fam][te])
            seconds[fam] = round(time.monotonic() - t0, 2)
            info[fam] = {k: v for k, v in fm.info.items() if isinstance(v, (int, float))}
            # Permutation importance on this fold's test block (a sample of it on months of rows).
            idx = np.nonzero(te)[0]
            if len(idx) > cfg.importance_rows:
                idx = np.sort(rng.choice(idx, cfg.importance_rows, replace=False))
            for g, (sm, n) in permutation_importance(fm.predict, X[fam][idx], y[idx], cols[fam], rng).items():
                a, b = imp[fam].get(g, (0.0, 0))
                imp[fam][g] = (a + sm, b + n)
        echo(f"train: fold {f.number + 1}/{len(folds)}: {int(tr.sum())} training, {int(te.sum())} test rows; "
             + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
        tested |= te
        fold_minutes = np.unique(ms[te])
        boot = Bootstrap(len(fold_minutes), evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
        fold_reports.append({
            "fold": f.number, "train_rows": int(tr.sum()), "test_rows": int(te.sum()),
            "train_end": iso(f.train_end_ms), "test_start": iso(f.test_start_ms), "test_end": iso(f.test_end_ms),
            "fit_seconds": seconds, "fit_info": info,
            "metrics": {m: evaluation.metrics_with_ci(_sample(ms[te], fold_minutes, prob[m][te], ret[m][te], y[te]), boot)
                        for m in models}})
    minutes = np.unique(ms[tested])
    boot = Bootstrap(len(minutes), evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
    samples = {m: _sample(ms[tested], minutes, prob[m][tested], ret[m][tested], y[tested]) for m in models}
    overall = {m: evaluation.metrics_with_ci(samples[m], boot) for m in models}
    # The majority-class rate of the test rows, with its interval: what "no skill" looks like.
    yt = samples[BASELINES[0]].realized
    maj_up = float(np.mean(yt[yt != 0] > 0)) >= 0.5
    majority = evaluation.metrics_with_ci(
        Sample(samples[BASELINES[0]].time_index, np.full(len(yt), 0.75 if maj_up else 0.25), np.zeros(len(yt)), yt), boot)
    zero = int((y == 0).sum())
    importance = {fam: sorted(({"feature": g, "brier_increase": s / n} for g, (s, n) in imp[fam].items() if n),
                              key=lambda r: -r["brier_increase"]) for fam in cfg.families}
    report = {
        "horizon": cfg.horizon, "rows": len(y), "tested_rows": int(tested.sum()), "test_minutes": len(minutes),
        "zero_returns": {"all_rows": zero, "tested_rows": int((yt == 0).sum())},
        "up_rate_tested": float(np.mean(yt[yt != 0] > 0)) if (yt != 0).any() else None,
        "block_minutes": evaluation.block_length(cfg.horizon), "bootstrap_reps": cfg.bootstrap_reps,
        "level": evaluation.LEVEL, "candidates": list(cfg.families), "baselines": list(BASELINES),
        "inputs": cols, "folds": fold_reports, "overall": overall,
        "majority_rate": majority["accuracy"], "importance": importance, "shuffle_labels": cfg.shuffle_labels,
    }
    return Evaluation(report, samples, tested, boot)
