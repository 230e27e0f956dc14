"""The one promotion rule: the best walk-forward Brier, significantly better than both naive baselines,
not beaten by another candidate, no leak, and not significantly worse than the current champion."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from tickcast import evaluation, features
from tickcast.evaluation import Bootstrap, Comparison, Sample
from tickcast.training.config import BASELINES, TrainConfig, iso
from tickcast.training.walkforward import Evaluation

def compare_champion(ev: Evaluation, data: pd.DataFrame, best: str, champion, cfg: TrainConfig) -> Comparison:
    """The current champion against the best candidate on tested rows after the champion's training end.

    `passed` means the champion is significantly BETTER (the candidate must then not be promoted).
    """
    against = f"champion v{champion.version}"
    nan = float("nan")
    if champion.feature_version != features.feature_version():
        return Comparison(against + f" (feature version {champion.feature_version}: not comparable)", nan, nan, nan,
                          0, False)
    ms = data["window_ms"].to_numpy(np.int64)[ev.test_mask]
    after = ms > champion.training_end_ms
    if after.sum() < cfg.min_champion_rows:
        return Comparison(against + f" (only {int(after.sum())} tested rows after its training end "
                          f"{iso(champion.training_end_ms)}; need {cfg.min_champion_rows} to compare)",
                          nan, nan, nan, int(after.sum()), False)
    cand, n_min = evaluation.subset(ev.samples[best], after)
    X = data[list(champion.features)].to_numpy(float)[ev.test_mask][after]
    p, r = champion.predictor()(X)
    champ = Sample(cand.time_index, p, r, cand.realized)
    boot = Bootstrap(n_min, evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
    return evaluation.compare(champ, cand, f"{best} (by {against})", boot)


def gate(ev: Evaluation, cfg: TrainConfig, champion_check=None) -> dict:
    """The one rule: the best walk-forward Brier among the candidates, then every check.

    Returns {"best", "promoted", "checks": [...], "reasons": {family: words}, "decision": sentence}.
    """
    o = ev.report["overall"]
    fams = list(cfg.families)
    best = min(fams, key=lambda f: (o[f]["brier"]["value"], fams.index(f)))
    checks = []
    for b in BASELINES:
        c = evaluation.compare(ev.samples[best], ev.samples[b], b, ev.boot)
        checks.append({"check": f"beats {b}", "passed": c.passed, "comparison": asdict(c), "words": c.describe()})
    for f in fams:
        if f == best:
            continue
        c = evaluation.compare(ev.samples[f], ev.samples[best], best, ev.boot)
        checks.append({"check": f"not beaten by {f}", "passed": not c.passed, "comparison": asdict(c),
                       "words": f"{f} " + ("beats" if c.passed else "does not significantly beat") +
                       f" {best}: Brier improvement {c.improvement:+.6f} [{c.lo:+.6f}, {c.hi:+.6f}]"})
    leaks = [f for f in fams if o[f]["accuracy"]["value"] > cfg.leak_accuracy]
    leak_list = ", ".join(f"{f} {o[f]['accuracy']['value']:.3f}" for f in leaks)
    checks.append({"check": "no leak", "passed": not leaks, "comparison": None,
                   "words": (f"direction accuracy of {leak_list} "
                             f"is above {cfg.leak_accuracy:.0%}: treated as a leak") if leaks else
                   f"every candidate's direction accuracy is at most {cfg.leak_accuracy:.0%}"})
    if champion_check is not None:
        c = champion_check
        words = (f"the current {c.against.split('(by ')[-1].rstrip(')')} is significantly better on rows after its "
                 f"training end: Brier improvement {c.improvement:+.6f} [{c.lo:+.6f}, {c.hi:+.6f}]" if c.passed else
                 f"not significantly worse than the current champion ({c.against})" if c.rows == 0 else
                 f"not significantly worse than the current champion: its Brier improvement over {best} "
                 f"{c.improvement:+.6f} [{c.lo:+.6f}, {c.hi:+.6f}] over {c.rows} rows")
        checks.append({"check": "not worse than the champion", "passed": not c.passed, "comparison": asdict(c),
                       "words": words})
    if cfg.shuffle_labels:
        checks.append({"check": "real labels", "passed": False, "comparison": None,
                       "words": "shuffled labels: a negative control is never promoted"})
    failed = [c for c in checks if not c["passed"]]
    promoted = not failed
    b_brier = o[best]["brier"]["value"]
    reasons = {}
    for f in fams:
        if f == best:
            reasons[f] = ("promoted: " + "; ".join(c["words"] for c in checks) if promoted else
                          "best walk-forward Brier but not promoted: " + "; ".join(c["words"] for c in failed))
        else:
            reasons[f] = (f"walk-forward Brier {o[f]['brier']['value']:.6f} is worse than {best}'s {b_brier:.6f}"
                          + ("" if promoted else f" (and {best} itself was not promoted)"))
    bl = {b: o[best]["brier"]["value"] - o[b]["brier"]["value"] for b in BASELINES}
    if promoted:
        decision = (f"{best} is promoted to champion: best walk-forward Brier {b_brier:.5f}, significantly better "
                    f"than " + " and ".join(f"{b} ({-bl[b]:+.5f})" for b in BASELINES)
                    + ", and no other candidate beats it.")
    else:
        decision = (f"Nothing is promoted: the best candidate, {best} (Brier {b_brier:.5f}), fails "
                    + "; ".join(c["words"] for c in failed) + ".")
    return {"best": best, "promoted": promoted, "checks": checks, "reasons": reasons, "decision": decision}


def margins(report: dict, family: str) -> dict:
    """The family's margin over each naive baseline: accuracy points and Brier, with paired intervals."""
    o = report["overall"]
    out = {}
    for b in BASELINES:
        c = next((x["comparison"] for x in report["gate"]["checks"] if x["check"] == f"beats {b}"), None)
        out[b] = {"accuracy_points": 100 * (o[family]["accuracy"]["value"] - o[b]["accuracy"]["value"]),
                  "accuracy_lo_vs_baseline_hi": 100 * (o[family]["accuracy"]["lo"] - o[b]["accuracy"]["hi"]),
                  "brier_improvement": c["improvement"] if c else None,
                  "brier_improvement_lo": c["lo"] if c else None, "brier_improvement_hi": c["hi"] if c else None}
    return out
