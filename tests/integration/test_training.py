"""Candidates, the one-rule gate and the report end to end: simulated and real bars in Delta, the
features job, TensorFlow models, a real MLflow store (SQLite + artifacts), the predict job."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from testkit.lakes import fork, own_lake
from tickcast import features, lake, model_io, modeling, tables, training

pytestmark = pytest.mark.spark

END = "2026-10-01T00:00Z"
# CI sizes (the same code path as `tickcast train`, fewer epochs and replicates).
FAST = dict(bootstrap_reps=300, folds=3, mlp=modeling.MlpConfig(epochs=12, patience=3),
            conv=modeling.ConvConfig(epochs=6, patience=2))
QUIET = dict(echo=lambda *_: None)


def _history(spark, s, minutes=12_000, **sim):
    """Simulated bars (real bars job code) -> silver.features (real features job)."""
    from jobs import sim_history
    from jobs.runner import run
    from tickcast.sources.simulator import SimConfig
    from tickcast.cli_common import time_ms as _time_ms

    cfg = SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=1.0, seed=7,
                    start_ms=_time_ms(END) - minutes * 60_000, **sim)
    assert sim_history.run(spark, s, cfg, minutes) > 1.9 * minutes
    run(["features"], s, available_now=True, spark=spark)
    return s


def _lake(spark, base_settings, tmp_path_factory, name, **sim):
    s = dataclasses.replace(own_lake(base_settings, tmp_path_factory.mktemp(name)), horizons=(1,))
    return _history(spark, s, **sim)


@pytest.fixture(scope="module")
def signal_lake(pipeline, tmp_path_factory):
    """The shared pipeline's bars and features (the interaction signal, docs/simulator.md: imbalance
    x the sign of the last return, an edge no linear model on the features can represent), with an
    MLflow store of its own: the training here never touches the pipeline's registry."""
    return fork(pipeline.settings, tmp_path_factory.mktemp("signal"), (tables.BARS, tables.FEATURES), registry=False)


@pytest.fixture(scope="module")
def champion_report(signal_lake):
    return training.train(signal_lake, training.TrainConfig(horizon=1, **FAST), **QUIET)


def _check_report(rep):
    """Fields the dashboard and the service read, and their consistency."""
    assert set(rep["overall"]) == {*training.CANDIDATES, *training.BASELINES}
    assert sum(f["test_rows"] for f in rep["folds"]) == rep["tested_rows"]
    for m in rep["overall"].values():
        for v in m.values():
            assert v["lo"] <= v["value"] <= v["hi"]
    g = rep["gate"]
    assert g["best"] == min(training.CANDIDATES, key=lambda f: rep["overall"][f]["brier"]["value"])
    assert g["result"] == ("promoted" if g["promoted"] else "not promoted")
    assert set(g["reasons"]) == set(training.CANDIDATES) and g["decision"].endswith(".")
    assert set(rep["registered"]) == set(training.CANDIDATES)
    for b in training.BASELINES:
        m = rep["margins"][b]
        assert m["accuracy_points"] == pytest.approx(
            100 * (rep["overall"][g["best"]]["accuracy"]["value"] - rep["overall"][b]["accuracy"]["value"]))
        assert m["brier_improvement"] == pytest.approx(
            rep["overall"][b]["brier"]["value"] - rep["overall"][g["best"]]["brier"]["value"], abs=1e-12)
    for fam in training.CANDIDATES:
        imp = rep["importance"][fam]
        assert imp and [r["brier_increase"] for r in imp] == sorted((r["brier_increase"] for r in imp), reverse=True)
    md = training.markdown(rep)
    for fam in (*training.CANDIDATES, *training.BASELINES):
        assert f"| {fam} |" in md
    assert g["decision"] in md


def test_the_family_that_can_represent_the_planted_signal_is_champion(signal_lake, champion_report):
    rep = champion_report
    _check_report(rep)
    assert rep["alias"] == "champion" and rep["gate"]["result"] == "promoted", rep["gate"]["decision"]
    best = rep["family"]
    assert best in ("mlp", "conv"), best          # a non-linear family; the linear one cannot represent it
    o = rep["overall"]
    assert o[best]["brier"]["value"] < o["linear"]["brier"]["value"]
    assert 0.52 < o[best]["accuracy"]["value"] < training.LEAK_ACCURACY
    for b in training.BASELINES:
        assert rep["margins"][b]["brier_improvement_lo"] > 0
    # What matters to it: the two inputs of the planted interaction lead the permutation importance.
    top = [r["feature"] for r in rep["importance"][best][:4]]
    assert any(t == "imbalance" or t.startswith("hi_") for t in top), top        # imbalance of minute t-1
    assert any(t == "ret_1" or t.startswith("hr_") for t in top), top            # the sign of its return
    assert rep["symbols"] == ["BTCUSDT-SIMSIG", "ETHUSDT-SIMSIG"]
    assert rep["leakage_guard"]["checked"] == 20

    # The registry: every candidate a version; the champion; the others challengers, with the reason.
    client = model_io.configure(signal_lake)
    for fam, r in rep["registered"].items():
        mv = client.get_model_version("tickcast-h1", r["version"])
        assert mv.tags["family"] == fam and mv.tags["gate_reason"] == r["reason"]
        if fam == best:
            assert r["alias"] == "champion"
        else:
            assert r["alias"] == "challenger" and "worse than" in mv.tags["challenger_reason"]
    assert str(client.get_model_version_by_alias("tickcast-h1", "champion").version) == rep["version"]
    loaded = model_io.load(signal_lake, "tickcast-h1", "champion")
    assert loaded.meta["family"] == best and loaded.features == rep["inputs"][best]
    assert loaded.feature_version == features.feature_version()
    # 8 days of history: too short for day-of-week, which the models leave out (and say so).
    assert rep["features"] == [f for f in features.FEATURES if f not in training.WEEKLY]
    assert set(loaded.reference) == set(rep["features"])

    # The report is the run's artefact, and `tickcast train` would print the same markdown.
    import mlflow

    art = json.loads(mlflow.artifacts.load_text(f"runs:/{rep['run_id']}/evaluation/report.json"))
    assert art["gate"]["decision"] == rep["gate"]["decision"] and art["registered"] == rep["registered"]
    assert mlflow.artifacts.load_text(f"runs:/{rep['run_id']}/evaluation/report.md") == training.markdown(rep)
    # The pyfunc model and the direct batch path give the same predictions.
    rows = training.read_features(signal_lake, features.feature_version()).query("~warmup").head(300)
    pf = mlflow.pyfunc.load_model("models:/tickcast-h1@champion").predict(rows[loaded.features])
    p, r = loaded.predictor()(rows[loaded.features].to_numpy(float))
    np.testing.assert_allclose(pf["prob_up"].to_numpy(), p, rtol=1e-6)
    assert ((p > 0) & (p < 1)).all()


def test_leakage_guard_catches_a_planted_shift(signal_lake):
    bars = training.read_bars(signal_lake)
    bars = bars[bars["symbol"] == "BTCUSDT-SIMSIG"].iloc[:3000]

    def leaky(b):   # an innocent name for tomorrow's imbalance
        out = features.compute(b)
        return out.assign(flow_persistence=out.groupby("symbol")["imbalance"].shift(-1))

    rows = leaky(bars)
    with pytest.raises(training.LeakageError, match="flow_persistence"):
        training.leakage_guard(rows[~rows["warmup"]], bars, samples=10, compute=leaky)
    honest = features.compute(bars)
    assert training.leakage_guard(honest[~honest["warmup"]], bars, samples=10)["checked"] == 10


def test_too_little_history_is_said_plainly(signal_lake):
    # 50 one-hour bootstrap blocks in each of 3 test blocks after the first half: 12.5 days.
    with pytest.raises(training.TrainingError, match=r"too little history for horizon 1 min: \d+ labelled rows over "
                                                     r"8\.\d days; need at least 12\.5 days"):
        training.train(signal_lake, training.TrainConfig(horizon=1, min_blocks_per_fold=50, **FAST), **QUIET)


def test_models_command_lists_promotes_and_rolls_back(signal_lake, champion_report, monkeypatch):
    from tickcast.cli import cli

    for f in ("data_dir", "lake_uri", "checkpoint_uri", "mlflow_uri"):
        monkeypatch.setenv("TICKCAST_" + f.upper(), str(getattr(signal_lake, f)))
    r = CliRunner().invoke(cli, ["models", "--horizon", "1"])
    assert r.exit_code == 0, r.output
    assert f"{champion_report['version']}  champion" in r.output and "challenger" in r.output
    other = next(v["version"] for v in champion_report["registered"].values() if v["alias"] != "champion")
    r = CliRunner().invoke(cli, ["models", "promote", other, "--horizon", "1", "--reason", "manual check"])
    assert r.exit_code == 0, r.output
    client = model_io.configure(signal_lake)
    assert str(client.get_model_version_by_alias("tickcast-h1", "champion").version) == other
    r = CliRunner().invoke(cli, ["models", "rollback", "--horizon", "1", "--reason", "worse live"])
    assert r.exit_code == 0, r.output
    assert str(client.get_model_version_by_alias("tickcast-h1", "champion").version) == champion_report["version"]


def test_no_signal_promotes_nothing(spark, base_settings, tmp_path_factory):
    s = _lake(spark, base_settings, tmp_path_factory, "noise")
    rep = training.train(s, training.TrainConfig(horizon=1, **FAST), **QUIET)
    _check_report(rep)
    assert rep["symbols"] == ["BTCUSDT-SIM", "ETHUSDT-SIM"]
    assert not rep["gate"]["promoted"] and rep["champion"] is None and rep["alias"] == "challenger"
    assert rep["gate"]["decision"].startswith("Nothing is promoted")
    assert {r["alias"] for r in rep["registered"].values()} == {"challenger"}
    client = model_io.configure(s)
    with pytest.raises(Exception):
        client.get_model_version_by_alias("tickcast-h1", "champion")


def test_a_linear_relation_makes_the_linear_candidate_champion_and_predict_scores_it(
        spark, base_settings, tmp_path_factory):
    from jobs.runner import run

    s = _lake(spark, base_settings, tmp_path_factory, "linear", plant_signal=True, signal_kind="linear",
              signal_strength=0.45)
    rep = training.train(s, training.TrainConfig(horizon=1, **FAST), **QUIET)
    _check_report(rep)
    assert rep["family"] == "linear" and rep["alias"] == "champion", rep["gate"]["decision"]

    run(["predict"], s, available_now=True, spark=spark)
    t = lake.read(tables.PREDICTIONS, s)
    got = t.to_pandas().assign(window_ms=lake.to_ms(t["window_start"]))
    assert set(got["model_version"]) == {rep["version"]}
    loaded = model_io.load(s, "tickcast-h1", rep["version"])
    assert loaded.meta["family"] == "linear"
    rows = training.read_features(s, features.feature_version())
    rows = rows[~rows["warmup"]]
    p, r = loaded.predictor()(rows[loaded.features].to_numpy(float))
    direct = rows[["symbol", "window_ms"]].assign(p=p, r=r)
    m = got.merge(direct, on=["symbol", "window_ms"])
    assert len(m) == len(direct) == len(got)
    np.testing.assert_allclose(m["prob_up"], m["p"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(m["pred_return"], m["r"], rtol=1e-5, atol=1e-12)


@pytest.fixture(scope="module")
def real_lake(spark, base_settings, tmp_path_factory, shared_data):
    """Six months of real BTCUSDT klines -> bars -> features (the jobs' own code), built once."""
    from jobs.backfill import backfill
    from jobs.runner import run

    files = sorted((shared_data / "klines_1m").glob("BTCUSDT-1m-2024-0[1-6].csv.gz"))
    if len(files) != 6:
        pytest.skip(f"six months of BTCUSDT klines not in {shared_data / 'klines_1m'}")
    s = own_lake(base_settings, tmp_path_factory.mktemp("real"))
    backfill(spark, s, files)
    run(["features"], s, available_now=True, spark=spark)
    return s


def test_real_klines_promote_an_honest_champion_at_5_minutes(real_lake, monkeypatch):
    from tickcast.cli import cli

    for f in ("data_dir", "lake_uri", "checkpoint_uri", "mlflow_uri"):
        monkeypatch.setenv("TICKCAST_" + f.upper(), str(getattr(real_lake, f)))
    out = real_lake.data_dir and (lake.uri(tables.FEATURES, real_lake) + "-report.json")
    r = CliRunner().invoke(cli, ["train", "--horizon", "5", "--epochs", "6", "--conv-epochs", "3",
                                 "--bootstrap-reps", "300", "--report", out])
    assert r.exit_code == 0, r.output
    rep = json.loads(open(out).read())
    assert rep["symbols"] == ["BTCUSDT"] and rep["rows"] > 250_000
    _check_report(rep)
    assert "**Decision:** " + rep["gate"]["decision"] in r.output      # the report, printed
    assert rep["alias"] == "champion", rep["gate"]["decision"]
    o, best = rep["overall"], rep["family"]
    for b in training.BASELINES:
        assert o[best]["accuracy"]["lo"] > o[b]["accuracy"]["value"], (best, b, o[best]["accuracy"], o[b]["accuracy"])
        assert o[best]["accuracy"]["lo"] > o[b]["accuracy"]["lo"]
    for fam in training.CANDIDATES:
        assert o[fam]["accuracy"]["value"] < training.LEAK_ACCURACY
