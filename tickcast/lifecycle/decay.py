"""Demotion on live decay or age: the champion's realised outcomes against the naive baselines.

The judgement (`judge`) is pure: the champion's outcomes after its training end (out of sample) whose
bar lies in the decay window, ending at the newest outcome (bar time, so a replay is judged like a live
run). Unlike gold.model_scores it does not also ask that the prediction was made before the outcome:
on a replay of past days every prediction is made after its outcome, and the features never see past
their own bar, so those rows are as out-of-sample as live ones. With at least `min_outcomes` nonzero
returns, each baseline's Brier improvement over the champion gets the paired moving-block bootstrap
interval the gate uses (tickcast.evaluation.compare); if its lower end is above zero for climatology
or momentum, the champion is significantly worse than that baseline and loses `champion`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tickcast import evaluation, lake, tables
from tickcast.settings import Settings

BASELINES = ("climatology", "momentum")
OUTCOME_COLS = ["model_name", "model_version", "horizon", "window_start", "prob_up", "realized_return",
                "climatology_prob_up", "momentum_prob_up", "after_training_end", "made_before_outcome"]


@dataclass(frozen=True)
class Verdict:
    decayed: bool
    reason: str
    numbers: dict


def judge(outcomes: pd.DataFrame, horizon: int, window_ms: int, min_outcomes: int, reps: int = 1000,
          seed: int = 0) -> Verdict:
    """Is the champion significantly worse than a baseline over the window? (pure)

    Args:
        outcomes: one model version's gold.outcomes rows; `window_ms` is the bar time in epoch ms.
        window_ms: the decay window's width; it ends at the newest counted bar.
        min_outcomes: nonzero-return rows needed before any judgement.
    """
    o = outcomes[outcomes["after_training_end"].astype(bool)]
    if o.empty:
        return Verdict(False, "no live outcomes after the training end yet", {"n": 0})
    end = int(o["window_ms"].max())
    o = o[o["window_ms"] > end - window_ms]
    y = o["realized_return"].to_numpy(float)
    n = int((y != 0).sum())
    span = {"window_start": _iso(int(o["window_ms"].min())), "window_end": _iso(end), "n": n}
    if n < min_outcomes:
        return Verdict(False, f"{n} outcomes in the decay window, fewer than the {min_outcomes} needed", span)
    minutes, idx = np.unique(o["window_ms"].to_numpy(np.int64), return_inverse=True)
    boot = evaluation.Bootstrap(len(minutes), evaluation.block_length(horizon), reps, seed)
    champ_p = o["prob_up"].to_numpy(float)
    comps, worse = {}, []
    for b in BASELINES:
        p = o[f"{b}_prob_up"].to_numpy(float)
        ok = ~np.isnan(p)
        if not ok.any():
            continue
        sub_idx = np.unique(idx[ok], return_inverse=True)[1]
        sub_boot = evaluation.Bootstrap(int(sub_idx.max()) + 1, boot.block, reps, seed)
        c = evaluation.compare(evaluation.Sample(sub_idx, p[ok], np.zeros(ok.sum()), y[ok]),
                               evaluation.Sample(sub_idx, champ_p[ok], np.zeros(ok.sum()), y[ok]),
                               "the champion", sub_boot)
        comps[b] = asdict(c)
        hits = ((champ_p[ok] > 0.5) == (y[ok] > 0))[y[ok] != 0]
        bhits = ((p[ok] > 0.5) == (y[ok] > 0))[y[ok] != 0]
        comps[b].update(champion_accuracy=float(hits.mean()), baseline_accuracy=float(bhits.mean()))
        if c.passed:
            worse.append(f"{b} beats it: Brier improvement over the champion {c.improvement:+.6f} "
                         f"[{c.lo:+.6f}, {c.hi:+.6f}] over {c.rows} outcomes (accuracy {hits.mean():.3f} vs "
                         f"{bhits.mean():.3f})")
    numbers = {**span, "comparisons": comps}
    if worse:
        return Verdict(True, f"live outcomes {span['window_start']} .. {span['window_end']} are significantly worse "
                             "than the naive baselines: " + "; ".join(worse), numbers)
    return Verdict(False, "not significantly worse than climatology or momentum over the decay window", numbers)


def _iso(ms: int) -> str:
    from tickcast.training.config import iso

    return iso(ms)


def champion_outcomes(s: Settings, name: str, version: str, horizon: int) -> pd.DataFrame:
    """One version's gold.outcomes rows (delta-rs), with `window_ms` in epoch ms."""
    if not lake.exists(tables.OUTCOMES, s):
        return pd.DataFrame(columns=[*OUTCOME_COLS, "window_ms"])
    t = lake.read(tables.OUTCOMES, s, columns=OUTCOME_COLS,
                  filters=[("model_name", "=", name), ("model_version", "=", str(version)),
                           ("horizon", "=", int(horizon))])
    df = t.drop(["window_start"]).to_pandas()
    df["window_ms"] = lake.to_ms(t["window_start"])
    return df


def newest_feature_ms(s: Settings) -> int | None:
    """The newest silver.features bar (epoch ms), the 'now' of a retrain window and of a model's age."""
    if not lake.exists(tables.FEATURES, s):
        return None
    col = lake.read(tables.FEATURES, s, columns=["window_start"])["window_start"]
    return None if len(col) == 0 else int(lake.to_ms(col).max())


def check(s: Settings, horizon: int, client, echo=print, reps: int = 1000) -> dict | None:
    """Judge the horizon's champion on decay, then on age; demote it (alias, tag, event) if it fails.

    Returns the event row written, or None when the champion stays (or there is none).
    """
    from tickcast import model_io
    from tickcast import model_events as events

    name = model_io.model_name(horizon)
    mv = model_io.resolve(client, name, model_io.CHAMPION)
    if mv is None:
        return None
    version = str(mv.version)
    v = judge(champion_outcomes(s, name, version, horizon), horizon, int(s.decay_window_s * 1000),
              s.decay_min_outcomes, reps)
    event, reason, numbers = events.DEMOTION, v.reason, v.numbers
    if not v.decayed:
        if s.model_max_age_s is None:
            return None
        newest = newest_feature_ms(s)
        meta = (mv.tags or {}).get("training_end")
        end_ms = _training_end_ms(mv)
        if newest is None or end_ms is None:
            return None
        age_s = (newest - end_ms) / 1000
        if age_s <= s.model_max_age_s:
            return None
        event = events.EXPIRY
        reason = (f"its training data ended {meta}, {age_s / 3600:.1f} h before the newest feature row: older "
                  f"than TICKCAST_MODEL_MAX_AGE ({s.model_max_age})")
        numbers = {"age_hours": age_s / 3600, "max_age_hours": s.model_max_age_s / 3600,
                   "newest_feature": _iso(newest)}
    model_io.demote(client, name, version, event, reason)
    echo(f"lifecycle: {name} v{version} loses champion ({event}): {reason}")
    return events.record(s, horizon=horizon, model_name=name, version=version, event=event, reason=reason,
                         numbers=numbers, source="retrainer")


def _training_end_ms(mv) -> int | None:
    import json

    try:
        return int(json.loads((mv.tags or {})["meta"])["training_end_ms"])
    except (KeyError, ValueError, TypeError):
        return None

