"""The lifecycle's pure parts: duration settings, the decay judgement, the status line, the model
page's horizon choice. (The loop on a real lake and MLflow store: tests/integration/test_lifecycle.py.)"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tickcast.settings import SettingsError, load
from tickcast.timeunits import MINUTE_MS as MIN



def test_lifecycle_defaults_and_durations():
    s = load({})
    assert (s.retrain_every, s.train_window, s.decay_window, s.decay_min_outcomes, s.model_max_age) == \
        ("24h", "90d", "24h", 720, "off")
    assert (s.retrain_every_s, s.train_window_s, s.decay_window_s, s.model_max_age_s) == (86400, 90 * 86400, 86400,
                                                                                          None)
    s = load({"TICKCAST_RETRAIN_EVERY": "30m", "TICKCAST_TRAIN_WINDOW": "2w", "TICKCAST_MODEL_MAX_AGE": "36H",
              "TICKCAST_DECAY_WINDOW": "3600"})
    assert (s.retrain_every_s, s.train_window_s, s.model_max_age_s, s.decay_window_s) == (1800, 14 * 86400,
                                                                                          36 * 3600, 3600)
    # A child process re-reads what the parent wrote (Settings.child_env): the same settings.
    env = {k: v for k, v in s.child_env().items() if k.startswith("TICKCAST_")}
    assert load(env) == s


@pytest.mark.parametrize("name,value", [
    ("RETRAIN_EVERY", "daily"), ("RETRAIN_EVERY", "0h"), ("RETRAIN_EVERY", "-1d"), ("TRAIN_WINDOW", "12h"),
    ("TRAIN_WINDOW", "90 days"), ("DECAY_WINDOW", "1y"), ("DECAY_MIN_OUTCOMES", "0"), ("DECAY_MIN_OUTCOMES", "x"),
    ("MODEL_MAX_AGE", "never"), ("MODEL_MAX_AGE", "0s"),
])
def test_a_bad_lifecycle_setting_fails_naming_it(name, value):
    with pytest.raises(SettingsError) as e:
        load({f"TICKCAST_{name}": value})
    assert str(e.value).startswith(f"TICKCAST_{name}:")


def _outcomes(n_minutes: int, champion_edge: float, seed: int = 0, after: bool = True) -> pd.DataFrame:
    """Outcomes of one version on 2 symbols: the champion right with probability 0.5 + edge."""
    rng = np.random.default_rng(seed)
    ms = np.repeat(np.arange(n_minutes, dtype=np.int64) * MIN, 2)
    y = rng.normal(0, 1e-3, len(ms))
    right = rng.random(len(ms)) < 0.5 + champion_edge
    p = np.where((y > 0) == right, 0.56, 0.44)
    return pd.DataFrame({"window_ms": ms, "prob_up": p, "realized_return": y, "climatology_prob_up": 0.5,
                         "momentum_prob_up": rng.uniform(0.49, 0.51, len(ms)), "after_training_end": after,
                         "made_before_outcome": True})


def test_a_champion_much_worse_than_the_baselines_is_judged_decayed_and_a_good_one_is_not():
    from tickcast.lifecycle.decay import judge

    bad = judge(_outcomes(1440, -0.08), 1, 1440 * MIN, 720, reps=300)
    assert bad.decayed and "climatology beats it" in bad.reason
    c = bad.numbers["comparisons"]["climatology"]
    assert c["passed"] and c["lo"] > 0 and c["champion_accuracy"] == pytest.approx(0.42, abs=0.02)
    good = judge(_outcomes(1440, 0.03), 1, 1440 * MIN, 720, reps=300)
    assert not good.decayed and not good.numbers["comparisons"]["climatology"]["passed"]
    # A tie is never a demotion: a champion saying what climatology says.
    tie = _outcomes(1440, 0.0, seed=3).assign(prob_up=0.5)
    assert not judge(tie, 1, 1440 * MIN, 720, reps=300).decayed
    # But a confident coin-flipper is worse than climatology by Brier (0.2536 against 0.25): demoted.
    assert judge(_outcomes(1440, 0.0, seed=3), 1, 1440 * MIN, 720, reps=300).decayed


def test_the_decay_window_and_the_minimum_bound_the_judgement():
    from tickcast.lifecycle.decay import judge

    df = _outcomes(3000, -0.08)
    v = judge(df, 1, 600 * MIN, 720, reps=200)        # 600 minutes x 2 symbols = 1,200 rows >= 720
    assert v.decayed and v.numbers["window_start"] == "1970-01-02T16:00:00Z" and v.numbers["n"] == 1200
    few = judge(df, 1, 300 * MIN, 720, reps=200)       # 600 rows
    assert not few.decayed and "fewer than the 720 needed" in few.reason
    # Outcomes from before the training end never count.
    assert not judge(_outcomes(1440, -0.08, after=False), 1, 1440 * MIN, 10, reps=200).decayed


def test_the_status_line_shows_lifecycle_failures():
    from tickcast.status import Status, plain_line

    st = Status(source="simulate", lifecycle="h1 retrain FAILED 12-07 10:00: ConnectionError")
    assert "h1 retrain FAILED" in plain_line(st)


def test_the_model_page_opens_on_a_horizon_with_data():
    from dashboard.pages.model import pick_horizon

    assert pick_horizon([1, 5], {5}, None, None) == 5                 # first load: where the data is
    assert pick_horizon([1, 5], set(), None, None) == 1               # nothing anywhere: the first
    assert pick_horizon([1, 5], {5}, 1, 1) == 5                       # auto-picked h1, then h5 got a champion
    assert pick_horizon([1, 5], {5}, 1, 5) == 1                       # the user chose h1: kept
    assert pick_horizon([1, 5, 15], {5, 15}, 15, 15) == 15            # auto-picked and has data: kept
    assert dataclasses.is_dataclass(load({}))


def test_a_quick_bootstrap_training_makes_the_full_retrain_due_at_once():
    from tickcast.lifecycle.loop import partial

    fams = ("linear", "mlp", "conv")
    quick = {"event": "promotion", "at_ms": 0, "numbers": {"candidates": ["linear"]}}
    assert partial(quick, fams) and partial({**quick, "event": "refusal"}, fams)
    assert not partial({**quick, "numbers": {"candidates": list(fams)}}, fams)     # a full one: the cadence
    assert not partial(quick, ("linear",))             # the retrainer fits no more than it did
    # A failed retrain, or an event from before trainings said what they fitted: the usual cadence.
    assert not partial({"event": "failed_retrain", "at_ms": 0, "numbers": {}}, fams)
    assert not partial({**quick, "numbers": {}}, fams) and not partial(None, fams)
