"""jobs.outcomes pure parts: realized close across gaps, zero returns, hits, the scores' filter and math."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jobs.outcomes import direction_hit, model_scores, realize

from tickcast.timeunits import MINUTE_MS as M
T0 = 1_704_067_200_000   # 2024-01-01 00:00 UTC


def preds(*rows) -> pd.DataFrame:
    """rows: (minute, horizon, close, prob_up) -> prediction frame with times in epoch ms."""
    out = []
    for minute, h, close, p in rows:
        out.append({"symbol": "X", "window_start": T0 + minute * M, "horizon": h, "target_time": T0 + (minute + h) * M,
                    "model_name": "tickcast-h", "model_version": "1", "feature_version": "f", "prob_up": p,
                    "pred_return": 0.0, "close": close, "training_end": T0 + 2 * M,
                    "climatology_prob_up": 0.6, "momentum_prob_up": np.nan, "momentum_return": 0.0,
                    "prediction_time": T0 + (minute + 1) * M, "batch_id": 0})
    return pd.DataFrame(out)


def bars(closes: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame({"window_ms": [T0 + m * M for m in closes], "close": list(closes.values())})


BARS = bars({0: 100.0, 1: 101.0, 2: 102.0, 5: 99.0, 6: 99.0, 9: 110.0})   # minutes 3, 4, 7, 8 have no bar


def test_realized_close_is_the_last_bar_at_or_before_the_target_across_gaps():
    out = realize(preds((2, 1, 102.0, 0.7), (2, 2, 102.0, 0.7), (2, 3, 102.0, 0.3), (1, 5, 101.0, 0.6),
                        (0, 9, 100.0, 0.6)), BARS)
    # minute 3 missing: the close of minute 2 carries -> zero return; minute 5 realizes after a gap
    assert out["realized_close"].tolist() == [102.0, 102.0, 99.0, 99.0, 110.0]
    assert out["missing_minutes"].tolist() == [1, 2, 2, 2, 4]
    np.testing.assert_allclose(out["realized_return"], [0.0, 0.0, math.log(99 / 102), math.log(99 / 101),
                                                        math.log(110 / 100)], rtol=0, atol=0)
    assert out["missing_minutes"].dtype == "int32"


def test_realized_close_without_any_bar_in_range_or_any_bar_at_all_is_the_predictions_close():
    out = realize(preds((7, 1, 99.0, 0.9)), bars({}))
    assert out["realized_close"].tolist() == [99.0] and out["realized_return"].tolist() == [0.0]
    assert out["missing_minutes"].tolist() == [1] and out["hit"].isna().all()


def test_zero_return_has_no_hit_and_direction_is_compared_with_half():
    out = realize(preds((5, 1, 99.0, 0.9), (2, 3, 102.0, 0.5), (2, 3, 102.0, 0.51), (0, 1, 100.0, 0.49)), BARS)
    assert out["hit"].isna().tolist() == [True, False, False, False]
    assert out["hit"].tolist()[1:] == [True, False, False]      # down: 0.5 is not "up"; up at 101 vs 0.49
    assert out["climatology_hit"].tolist()[1:] == [False, False, True]    # 0.6 says up
    assert out["momentum_hit"].isna().all()                     # no baseline probability -> NULL
    assert direction_hit([0.7, 0.2, np.nan], [0.01, -0.01, 0.01]).tolist() == [True, True, pd.NA]


def test_training_end_and_made_before_outcome_flags():
    p = preds((2, 1, 102.0, 0.7), (5, 1, 99.0, 0.7), (5, 4, 99.0, 0.7))
    p.loc[1, "prediction_time"] = T0 + 7 * M - 1        # target bar 6 closes at 7: 1 ms before
    p.loc[2, "prediction_time"] = T0 + 10 * M           # target 9 closes at 10: too late
    out = realize(p, BARS)
    assert out["after_training_end"].tolist() == [False, True, True]
    assert out["made_before_outcome"].tolist() == [True, True, False]


def test_input_row_order_and_columns_are_kept():
    p = preds((5, 4, 99.0, 0.7), (0, 1, 100.0, 0.2))
    out = realize(p, BARS.iloc[::-1])                   # bars in any order
    assert out["window_start"].tolist() == p["window_start"].tolist()
    assert list(out.columns[:len(p.columns)]) == list(p.columns)
    assert out["realized_close"].tolist() == [110.0, 101.0]


def outcome_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    realized = rng.normal(0, 1e-3, n)
    realized[::7] = 0.0
    return pd.DataFrame({
        "model_name": "m", "model_version": rng.choice(["1", "2"], n), "horizon": 5,
        "symbol": rng.choice(["A", "B"], n),
        "target_time": T0 + rng.integers(0, 30 * 60, n) * M,       # 30 hours of targets
        "prob_up": rng.uniform(0, 1, n), "pred_return": rng.normal(0, 1e-3, n), "realized_return": realized,
        "climatology_prob_up": 0.55, "momentum_prob_up": np.where(rng.uniform(size=n) < 0.1, np.nan,
                                                                  rng.uniform(0, 1, n)),
        "after_training_end": rng.uniform(size=n) < 0.8, "made_before_outcome": rng.uniform(size=n) < 0.9,
    })


def test_scores_count_only_rows_after_training_end_and_before_the_outcome_in_the_window():
    o = outcome_frame(4000)
    latest = T0 + 29 * 60 * M
    got = model_scores(o, latest).set_index(["model_version", "symbol", "window"])
    assert len(got) == 2 * 3 * 2
    for (version, symbol, window), row in got.iterrows():
        width = {"1h": 60 * M, "24h": 24 * 60 * M}[window]
        sel = o[(o["model_version"] == version) & ((o["symbol"] == symbol) | (symbol == "*"))
                & (o["target_time"] > latest - width) & (o["target_time"] <= latest)
                & o["after_training_end"] & o["made_before_outcome"]]
        d = sel[sel["realized_return"] != 0]
        y = (d["realized_return"] > 0).astype(float)
        assert row["n"] == len(sel) > 0
        assert row["brier"] == pytest.approx(((d["prob_up"] - y) ** 2).mean(), abs=1e-6)
        assert row["accuracy"] == pytest.approx(((d["prob_up"] > 0.5) == (y > 0)).mean(), abs=1e-12)
        assert row["mae"] == pytest.approx((sel["pred_return"] - sel["realized_return"]).abs().mean(), abs=1e-15)
        assert row["climatology_brier"] == pytest.approx(((0.55 - y) ** 2).mean(), abs=1e-6)
        assert row["climatology_accuracy"] == pytest.approx((y > 0).mean(), abs=1e-12)
        dm = d[d["momentum_prob_up"].notna()]
        ym = (dm["realized_return"] > 0).astype(float)
        assert row["momentum_brier"] == pytest.approx(((dm["momentum_prob_up"] - ym) ** 2).mean(), abs=1e-6)
        assert row["momentum_accuracy"] == pytest.approx(((dm["momentum_prob_up"] > 0.5) == (ym > 0)).mean())


def test_scores_agree_with_the_evaluation_module():
    from tickcast.evaluation import Sample, per_row

    o = outcome_frame(500, seed=3).assign(after_training_end=True, made_before_outcome=True, model_version="1",
                                          symbol="A", target_time=T0)
    [row] = model_scores(o, T0).query("window == '24h' and symbol == 'A'").to_dict("records")
    parts = per_row(Sample(np.zeros(len(o), int), o["prob_up"].to_numpy(), o["pred_return"].to_numpy(),
                           o["realized_return"].to_numpy()))
    for m in ("brier", "accuracy", "mae"):
        assert row[m] == pytest.approx(parts[m][0].sum() / parts[m][1].sum(), rel=1e-12)


def test_scores_group_without_counted_rows_has_n_zero_and_null_metrics_and_old_rows_are_outside():
    o = outcome_frame(50).assign(after_training_end=False, model_version="1", symbol="A")
    latest = int(o["target_time"].max())
    got = model_scores(o, latest)
    assert set(got["n"]) == {0} and got[["brier", "accuracy", "mae", "momentum_brier"]].isna().all().all()
    assert model_scores(o, latest + 25 * 60 * M).empty          # every target older than 24 h
    assert model_scores(o.iloc[:0], latest).empty
    # An only-zero-returns window: n counts them, direction metrics are NULL, MAE is not.
    z = o.assign(after_training_end=True, made_before_outcome=True, realized_return=0.0)
    r = model_scores(z, latest).iloc[0]
    assert r["n"] > 0 and r["brier"] is None and r["accuracy"] is None and r["mae"] is not None


def test_realize_frames_keeps_each_symbol_to_its_own_bars():
    from jobs.outcomes import realize_frames

    p = pd.concat([preds((2, 3, 102.0, 0.7)), preds((2, 3, 102.0, 0.7)).assign(symbol="Y")], ignore_index=True)
    b = pd.concat([BARS.assign(symbol="X"), bars({2: 102.0, 4: 90.0}).assign(symbol="Y")], ignore_index=True)
    out = realize_frames(p, b)
    assert out["symbol"].tolist() == ["X", "Y"] and out["realized_close"].tolist() == [99.0, 90.0]
    assert "outcome_time" not in out.columns and realize_frames(p.iloc[:0], b).empty
