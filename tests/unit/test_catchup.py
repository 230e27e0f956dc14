"""Catching up after a start: the rule (tickcast.catchup), the dashboard header's reading of it from
the progress table (dashboard.health), and which model serves in words (stack.readings)."""
from __future__ import annotations

import pandas as pd

from dashboard import health
from stack.readings import backlog_words, serving_words
from tickcast.catchup import CATCH_UP_LIMIT_S, judge

T0 = 1_790_000_000.0      # the streams' start (epoch s)


def test_catching_up_until_a_live_minute_is_predicted_or_the_limit_passes():
    assert not judge(T0 + 5, None, None, None).catching_up                  # no stream known: alerts as usual
    c = judge(T0 + 5, T0, T0 - 30, T0 - 30, "ingest 2,500 msgs behind")      # history only
    assert c.catching_up and c.waiting_for == ("the first live minute's bar", "the backlog (ingest 2,500 msgs behind)")
    assert c.describe() == ("catching up: waiting for the first live minute's bar, the backlog "
                            "(ingest 2,500 msgs behind)")
    c = judge(T0 + 80, T0, T0 + 60, T0 - 30)                                 # a live bar, not yet its prediction
    assert c.catching_up and c.waiting_for == ("the first live minute's prediction",)
    assert not judge(T0 + 90, T0, T0 + 60, T0 + 60).catching_up              # caught up
    assert not judge(T0 + 90, T0, T0 + 60, T0 + 60, "ingest 9 msgs behind").catching_up   # lag alone: as usual
    assert judge(T0 + CATCH_UP_LIMIT_S, T0, T0 - 30, None).catching_up
    assert not judge(T0 + CATCH_UP_LIMIT_S + 1, T0, T0 - 30, None).catching_up   # too long: alerts as usual
    assert judge(T0 + 10, T0, None, None, limit_s=20).catching_up and not judge(T0 + 21, T0, None, None,
                                                                               limit_s=20).catching_up


def ts(s: float) -> pd.Timestamp:
    return pd.Timestamp(s, unit="s", tz="UTC")


def test_the_header_reads_the_start_from_each_querys_current_run():
    p = pd.DataFrame({"query_name": ["ingest", "ingest", "ingest", "bars", "bars"],
                      "run_id": ["old", "new", "new", "b", "b"],
                      "timestamp": [ts(T0 - 900), ts(T0 + 3), ts(T0 + 30), ts(T0 + 8), ts(T0 + 40)]})
    assert health.streams_started(p) == ts(T0 + 8)
    assert health.streams_started(p.iloc[:0]) is None
    lag = health.Check("Kafka lag", 42.0, 30.0, True, "ingest")
    age = health.Check("bar age", 400.0, 180.0, True, "")
    c = health.catching_up("SIMULATED", ts(T0 + 60), ts(T0 + 8), ts(T0 - 120), ts(T0 - 120), [age, lag])
    assert c.catching_up and c.describe() == ("catching up: waiting for the first live minute's bar, the backlog "
                                              "(Kafka lag 42 s in ingest)")
    # The newest prediction's minute [T0 + 60, T0 + 120) ended after the start: caught up.
    assert not health.catching_up("LIVE", ts(T0 + 130), ts(T0 + 3), ts(T0 + 60), ts(T0 + 60), [age]).catching_up
    # A replay's minutes are old by trade time: never "catching up", its alerts as before.
    assert not health.catching_up("REPLAY", ts(T0 + 60), ts(T0 + 3), None, None, [age]).catching_up
    assert not health.catching_up("SIMULATED", ts(T0 + 60), None, None, None, [age]).catching_up


def test_backlog_words_from_the_queries_progress():
    q = {"ingest": {"sources": [{"metrics": {"maxOffsetsBehindLatest": "2500"}}]},
         "bars": {"sources": [{}]}, "features": {"sources": [{"metrics": {"maxOffsetsBehindLatest": "0"}}]}}
    assert backlog_words(q) == "ingest 2,500 msgs behind" and backlog_words({}) == ""


def test_which_model_serves_and_why_in_words():
    fams = ("linear", "mlp", "conv")
    quick = {"version": "2", "family": "linear", "candidates": "linear", "gate_reason": "passed: +0.0012 [+0.0004, "
             "+0.0020] over climatology", "champion_reason": "passed: +0.0012 [+0.0004, +0.0020] over climatology"}
    w = serving_words(5, quick, None, fams)
    assert w.startswith("h5 serving v2 (linear); the quick bootstrap model (linear only")
    assert "mlp, conv follow in the first retrain, through the same gate" in w
    assert w.endswith("the gate passed it: passed: +0.0012 [+0.0004, +0.0020] over climatology")
    full = {**quick, "version": "7", "family": "mlp", "candidates": "linear,mlp,conv"}
    assert serving_words(1, full, None, fams) == ("h1 serving v7 (mlp); the gate passed it: passed: +0.0012 "
                                                  "[+0.0004, +0.0020] over climatology")
    manual = {**full, "champion_reason": "manual promote: keep serving over the weekend"}
    assert serving_words(1, manual, None, fams).endswith("promoted by hand: manual promote: keep serving over the "
                                                         "weekend")
    refused = {"version": "3", "family": "linear", "candidates": "linear", "gate_reason": "not promoted: no edge"}
    w = serving_words(1, None, refused, fams)
    assert w.startswith("h1 serving nothing: v3 (linear) was refused by the gate; the quick bootstrap model")
    assert w.endswith(": not promoted: no edge")
    assert serving_words(1, None, None, fams) == "h1 serving nothing: no model trained yet"
