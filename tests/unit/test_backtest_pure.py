"""The backtest's pure logic: period schedule, serving rule, strategy returns and fees, the gate's record."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from tickcast.backtest import pure
from tickcast.timeunits import HOUR_MS as H
from tickcast.timeunits import MINUTE_MS



def ms(s: str) -> int:
    return int(datetime.fromisoformat(s).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_periods_cover_the_range_and_cut_the_last():
    ps = pure.periods(0, 10 * H + 30 * MINUTE_MS, 3 * H)
    assert [(p.start_ms, p.end_ms) for p in ps] == [(0, 3 * H), (3 * H, 6 * H), (6 * H, 9 * H),
                                                    (9 * H, 10 * H + 30 * MINUTE_MS)]
    assert [p.number for p in ps] == [0, 1, 2, 3]


def test_periods_start_on_a_whole_minute_and_refuse_nonsense():
    assert pure.periods(1, 2 * H, H)[0].start_ms == MINUTE_MS
    with pytest.raises(ValueError, match="empty"):
        pure.periods(H, H, H)
    with pytest.raises(ValueError, match="whole number of minutes"):
        pure.periods(0, H, 90_000)


def test_month_periods_follow_the_calendar():
    ps = pure.month_periods(ms("2024-03-01"), ms("2024-07-01"))
    assert [(p.start_ms, p.end_ms) for p in ps] == [(ms("2024-03-01"), ms("2024-04-01")),
                                                    (ms("2024-04-01"), ms("2024-05-01")),
                                                    (ms("2024-05-01"), ms("2024-06-01")),
                                                    (ms("2024-06-01"), ms("2024-07-01"))]
    two = pure.month_periods(ms("2024-01-15"), ms("2024-05-20"), months=2)
    assert [p.end_ms for p in two] == [ms("2024-03-15"), ms("2024-05-15"), ms("2024-05-20")]


def test_no_training_label_reaches_the_period_start():
    assert pure.label_end_ms(10 * H) == 10 * H - MINUTE_MS   # the bar that closes at the start


def test_the_live_serving_rule():
    assert pure.serve(None, "a", promoted=False) is None          # a refused period with no champion serves nothing
    assert pure.serve(None, "a", promoted=True) == "a"
    assert pure.serve("old", "new", promoted=False) == "old"      # the champion keeps serving until replaced
    assert pure.serve("old", "new", promoted=True) == "new"


def test_strategy_long_above_threshold_with_a_fee_on_every_change():
    p = np.array([0.6, 0.6, 0.4, np.nan, 0.7])
    r = np.array([0.01, -0.02, 0.03, 0.04, 0.005])
    st = pure.strategy(p, r, 0.5, fee_bps=10)
    assert st.position.tolist() == [1, 1, 0, 0, 1]
    assert st.gross.tolist() == pytest.approx([0.01, -0.02, 0, 0, 0.005])
    c = -math.log(1 - 0.001)
    # in at 0, out at 2, in at 4, out after the last minute
    assert st.fees.tolist() == pytest.approx([c, 0, c, 0, 2 * c])
    assert st.changes == 4
    assert st.net.sum() == pytest.approx(0.01 - 0.02 + 0.005 - 4 * c)


def test_strategy_never_in_pays_nothing():
    st = pure.strategy(np.array([0.3, np.nan, 0.5]), np.array([0.1, 0.2, 0.3]), 0.5, 10)
    assert st.changes == 0 and st.net.sum() == 0


def test_buy_and_hold_pays_one_fee_in_and_one_out():
    r = np.array([0.01, 0.02, np.nan, -0.005])
    c = -math.log(1 - 0.001)
    assert pure.buy_and_hold(r, 10).sum() == pytest.approx(0.025 - 2 * c)


def test_verdict_says_when_the_strategy_only_loses_the_fees():
    words = pure.strategy_verdict({"value": -0.05, "lo": -0.07, "hi": -0.03}, {"value": 0.001, "lo": -0.02, "hi": 0.02},
                                  buy_hold=0.01, fees=0.051, changes=50)
    assert "only loses the fees" in words and "below buy-and-hold" in words
    edge = pure.strategy_verdict({"value": 0.02, "lo": 0.0, "hi": 0.04}, {"value": 0.05, "lo": 0.01, "hi": 0.09},
                                 buy_hold=0.01, fees=0.03, changes=30)
    assert "only loses the fees" not in edge and "above buy-and-hold" in edge
    assert "never took a position" in pure.strategy_verdict({"value": 0, "lo": 0, "hi": 0},
                                                             {"value": 0, "lo": 0, "hi": 0}, 0.01, 0.0, 0)


def test_beat_baselines_needs_every_baseline_beaten():
    assert pure.beat_baselines(0.24, {"climatology": 0.25, "momentum": 0.249}) is True
    assert pure.beat_baselines(0.2495, {"climatology": 0.25, "momentum": 0.249}) is False
    assert pure.beat_baselines(float("nan"), {"climatology": 0.25}) is None


def test_gate_tally_counts_right_and_wrong_decisions():
    t = pure.gate_tally([(True, True), (True, False), (False, True), (False, False), (False, False), (True, None)])
    assert (t["promoted_beat"], t["promoted_lost"], t["refused_would_have_beaten"], t["refused_rightly"]) == (1, 1, 1, 2)
    assert t["undecided"] == 1 and t["judged"] == 5 and t["right"] == 3
    assert t["right_share"] == pytest.approx(0.6)
    assert pure.gate_tally([])["right_share"] is None
