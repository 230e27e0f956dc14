"""The model lifecycle on a real lake and MLflow store: a regime change planted by the simulator
(the signal's sign flips), demotion of the old champion on its live outcomes, a sliding-window
retrain that promotes a model of the new regime, the window's leak check, what the predict job and
the service serve meanwhile, and the faults (too little history, MLflow unreachable, a kill between
two registrations).

The retrainer's entry points are called on the lake (the loop `up` runs calls the same ones on a
timer): driving a real `up` for two simulated days of outcomes would cost minutes of CI for the same
code path. The kill test runs the real `tickcast retrain` command as a process.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from testkit import faults
from tests.conftest import REPO, own_lake
from tickcast import lake, model_events, model_io, tables, training
from tickcast.timeunits import MINUTE_MS as MIN

pytestmark = pytest.mark.spark

END_MS = 1_790_000_000_000 // MIN * MIN
PRE, POST = 2400, 2600                      # minutes before and after the flip
FLIP_MS = END_MS - POST * MIN
FAST = dict(bootstrap_reps=300, folds=3)
LINEAR = ("linear",)
QUIET = dict(echo=lambda *_: None)


@pytest.fixture(scope="module")
def regime(spark, base_settings, tmp_path_factory):
    """Two symbols, the linear planted signal, its sign reversed for the last POST minutes; the old
    champion trained on the minutes before the flip; predictions and outcomes of all minutes."""
    from jobs import sim_history
    from jobs.runner import run
    from tickcast.sources.simulator import SimConfig

    s = dataclasses.replace(own_lake(base_settings, tmp_path_factory.mktemp("regime")), horizons=(1,),
                            train_window="31h", decay_window="2d", decay_min_outcomes=720, serve_reload_seconds=0.2)
    cfg = SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=0.3, seed=11, start_ms=END_MS - (PRE + POST) * MIN,
                    plant_signal=True, signal_kind="linear", signal_strength=0.4, signal_flip_ms=FLIP_MS)
    sim_history.run(spark, s, cfg, PRE + POST)
    run(["features"], s, available_now=True, spark=spark)
    old = training.train(s, training.TrainConfig(horizon=1, end_ms=FLIP_MS - MIN, families=LINEAR, **FAST), **QUIET)
    assert old["alias"] == "champion", old["gate"]["decision"]
    # Predictions first: the outcomes query is driven by new bars, so it must find them all there.
    run(["predict"], s, available_now=True, spark=spark)
    run(["outcomes"], s, available_now=True, spark=spark)
    return s, old


def _imbalance_slope(s, version: str) -> float:
    """How a version's P(up) moves with the last minute's imbalance on the post-flip feature rows."""
    m = model_io.load(s, "tickcast-h1", version)
    df = lake.read(tables.FEATURES, s).to_pandas()
    df = df[(df["window_start"].astype("int64") // 1000 >= FLIP_MS) & ~df["warmup"]]
    p, _ = m.predictor()(df[m.features].to_numpy("float32"))
    return float(np.corrcoef(p, df["imbalance"].to_numpy(float))[0, 1])


def _versions(s) -> list[str]:
    return [v["version"] for v in model_io.versions(model_io.configure(s), "tickcast-h1")]


def test_regime_change_demotes_the_old_champion_and_a_retrain_promotes_the_new_regime(regime):
    from jobs.predict_models import ModelResolver, NoModel
    from serving import create_app
    from stack.readings import lifecycle_summary
    from tickcast.lifecycle import decay, retrain

    s, old = regime
    client = model_io.configure(s)
    resolver = ModelResolver(s)                          # one resolver, as in a running predict job
    app = create_app(s)                                  # one service, never restarted
    web = app.test_client()
    symbol = sorted(old["symbols"])[0]
    assert resolver.resolve()[0].version == old["version"]
    r = web.get(f"/v1/predict/{symbol}?horizon=1")
    assert r.status_code == 200 and r.headers["X-Model-Version"] == old["version"]

    # Too few outcomes: no judgement, whatever the scores (and a young champion is not expired).
    assert decay.check(dataclasses.replace(s, decay_min_outcomes=10**7, model_max_age="30d"), 1, client,
                       **QUIET) is None
    assert str(model_io.resolve(client, "tickcast-h1", "champion").version) == old["version"]

    # The flip: the old champion is significantly worse than climatology on the decay window.
    ev = decay.check(s, 1, client, **QUIET)
    assert ev is not None and ev["event"] == "demotion" and ev["model_version"] == old["version"]
    nums = json.loads(ev["numbers"])
    assert nums["n"] >= s.decay_min_outcomes and nums["window_start"] >= training.iso(FLIP_MS)
    clim = nums["comparisons"]["climatology"]
    assert clim["passed"] and clim["lo"] > 0 and clim["champion_accuracy"] < 0.47
    assert model_io.resolve(client, "tickcast-h1", "champion") is None
    tags = client.get_model_version("tickcast-h1", old["version"]).tags
    assert "significantly worse" in tags["demotion"] and tags["champion_reason"].startswith("demotion:")

    # The horizon now serves nothing: the predict job's next batch has no model, the service a 503.
    with pytest.raises(NoModel):
        resolver.resolve()
    assert resolver.waiting_for() is not None
    deadline = time.monotonic() + 30      # the service re-reads the aliases every serve_reload_seconds
    while (r := web.get(f"/v1/predict/{symbol}?horizon=1")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.status_code == 503 and "champion" in r.get_json()["error"]

    # The next retrain, on the last TRAIN_WINDOW (after the flip), promotes a model of the new regime.
    before = set(_versions(s))
    # The planted edge is strong (58-61% direction accuracy): the leak guard's 60% would refuse it.
    rep = retrain.retrain(s, 1, LINEAR, **QUIET, **FAST, leak_accuracy=0.65)
    assert rep.get("alias") == "champion", rep.get("failed") or rep["gate"]["decision"]
    new = rep["version"]
    assert set(_versions(s)) - before == {new}
    # Leak check: every training row of the retrain lies inside its window.
    start, end = retrain.window(s, decay.newest_feature_ms(s))
    assert start > FLIP_MS and end == END_MS - MIN
    meta = json.loads(client.get_model_version("tickcast-h1", new).tags["meta"])
    assert start <= meta["training_start_ms"] and meta["training_end_ms"] <= end
    prep = training.command.prepare(s, training.TrainConfig(horizon=1, start_ms=start, end_ms=end, **FAST), **QUIET)
    assert prep.data["window_ms"].min() == meta["training_start_ms"]
    assert prep.data["window_ms"].max() + MIN == meta["training_end_ms"] and len(prep.data) == meta["rows"]
    # It fits the new regime: P(up) falls with the imbalance where the old champion's rose.
    assert _imbalance_slope(s, old["version"]) > 0.2 and _imbalance_slope(s, new) < -0.2

    # Both consumers follow the alias without a restart.
    assert resolver.resolve()[0].version == new
    deadline = time.monotonic() + 30
    while True:
        r = web.get(f"/v1/predict/{symbol}?horizon=1")
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.headers["X-Model-Version"] == new

    # ops.model_events: the old champion's promotion, its demotion, the new promotion, in order.
    evs = model_events.read(s, 1)
    assert list(evs["event"][:3]) == ["promotion", "demotion", "promotion"]
    assert list(evs["model_version"][:3]) == [new, old["version"], old["version"]]
    assert list(evs["source"][:3]) == ["retrainer", "retrainer", "train"]
    assert json.loads(evs["numbers"][0])["window_start"] == training.iso(start)
    summary = lifecycle_summary(s)
    assert summary.startswith(f"h1 v{new} promoted")

    # /v1/models shows the newest events (the app reads the registry again on its own).
    body = web.get("/v1/models").get_json()
    [h1] = [m for m in body["models"] if m["horizon"] == 1]
    assert [e["event"] for e in h1["events"][:2]] == ["promotion", "demotion"]

    # A champion older than TICKCAST_MODEL_MAX_AGE is flagged the same way: give v(old) back by hand,
    # then the age check (its training data ended POST minutes before the newest row) takes it away.
    from click.testing import CliRunner

    from tickcast.cli import cli

    env = {k: v for k, v in s.child_env().items() if k.startswith("TICKCAST_")}
    res = CliRunner().invoke(cli, ["models", "promote", old["version"], "--horizon", "1", "--reason", "test"], env=env)
    assert res.exit_code == 0, res.output
    aged = dataclasses.replace(s, model_max_age="1d", decay_min_outcomes=10**7)
    ev = decay.check(aged, 1, client, **QUIET)
    assert ev["event"] == "expiry" and ev["model_version"] == old["version"]
    assert json.loads(ev["numbers"])["age_hours"] == pytest.approx(POST / 60, abs=0.05)
    assert list(model_events.read(s, 1)["event"][:2]) == ["expiry", "manual_promotion"]
    assert model_io.resolve(client, "tickcast-h1", "champion") is None
    res = CliRunner().invoke(cli, ["models", "promote", new, "--horizon", "1", "--reason", "back"], env=env)
    assert res.exit_code == 0, res.output


def test_failed_retrains_leave_the_champion_serving_and_show_as_events(regime, monkeypatch):
    from stack.readings import lifecycle_summary
    from tickcast.lifecycle import retrain

    s, _ = regime
    client = model_io.configure(s)
    champ = model_io.resolve(client, "tickcast-h1", "champion")
    assert champ is not None
    versions = _versions(s)

    # Too little history: a window of a day is shorter than three walk-forward blocks need.
    rep = retrain.retrain(dataclasses.replace(s, train_window="1d"), 1, LINEAR, **QUIET, **FAST)
    assert "too little history" in rep["failed"]
    # MLflow unreachable (nothing listens there; no retries, so the failure is quick).
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    away = dataclasses.replace(s, mlflow_uri=f"http://127.0.0.1:{free_port()}")
    rep = retrain.retrain(away, 1, LINEAR, **QUIET, **FAST)
    assert "failed" in rep and "127.0.0.1" in rep["failed"]
    model_io.configure(s)

    assert _versions(s) == versions
    assert str(model_io.resolve(client, "tickcast-h1", "champion").version) == str(champ.version)
    evs = model_events.read(s, 1)
    assert list(evs["event"][:2]) == ["failed_retrain", "failed_retrain"]
    assert evs["model_version"][:2].isna().all()
    assert "127.0.0.1" in evs["reason"][0] and "too little history" in evs["reason"][1]
    assert "retrain FAILED" in lifecycle_summary(s) and "127.0.0.1" in lifecycle_summary(s)


def test_a_retrain_killed_between_registrations_registers_nothing_servable(regime):
    from tickcast.lifecycle import retrain

    s, _ = regime
    client = model_io.configure(s)
    champ = str(model_io.resolve(client, "tickcast-h1", "champion").version)
    before = set(_versions(s))
    # `retrain` trains with the command's defaults (4 folds): a window of 2 days (before the flip too).
    env = faults.child_env({**s.child_env(), "TICKCAST_TRAIN_WINDOW": "2d"}, "mid-register")
    proc = subprocess.run([sys.executable, "-m", "tickcast.cli", "retrain", "--once", "--force",
                           "--candidates", "linear"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -9, proc.stdout + proc.stderr          # SIGKILLed after one registration
    [half] = set(_versions(s)) - before
    assert client.get_model_version("tickcast-h1", half).tags[model_io.REGISTRATION] == model_io.UNFINISHED
    assert str(model_io.resolve(client, "tickcast-h1", "champion").version) == champ
    assert half not in (client.get_registered_model("tickcast-h1").aliases or {}).values()
    # `models promote` refuses it; the retrainer's start marks it abandoned, as an event.
    from click.testing import CliRunner

    from tickcast.cli import cli

    tick = {k: v for k, v in s.child_env().items() if k.startswith("TICKCAST_")}
    res = CliRunner().invoke(cli, ["models", "promote", half, "--horizon", "1", "--reason", "x"], env=tick)
    assert res.exit_code != 0 and "unfinished" in res.output
    assert retrain.sweep_unfinished(s, client, **QUIET) == [("tickcast-h1", half)]
    assert model_io.unfinished(client, "tickcast-h1") == [] and retrain.sweep_unfinished(s, client, **QUIET) == []
    ev = model_events.read(s, 1).iloc[0]
    assert ev["event"] == "abandoned" and ev["model_version"] == half and "never served" in ev["reason"]
    assert client.get_model_version("tickcast-h1", half).tags[model_io.REGISTRATION] == model_io.ABANDONED
    assert str(model_io.resolve(client, "tickcast-h1", "champion").version) == champ
