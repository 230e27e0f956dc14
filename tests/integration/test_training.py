"""Training and the promotion gate end to end: simulated and real bars in Delta, the features job,
TensorFlow models, a real MLflow store (SQLite + artifacts)."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import own_lake
from tickcast import evaluation, features, lake, model_io, tables, training

pytestmark = pytest.mark.spark

END = "2026-10-01T00:00Z"
FAST = dict(bootstrap_reps=400)


def _history(spark, s, **sim):
    """Simulated bars (real bars job code) -> silver.features (real features job)."""
    from jobs import sim_history
    from jobs.runner import run
    from producers.simulate import SimConfig
    from tickcast.cli_ml import _time_ms

    minutes = 12_000
    cfg = SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=1.0, seed=7,
                    start_ms=_time_ms(END) - minutes * 60_000, **sim)
    assert sim_history.run(spark, s, cfg, minutes) > 23_000
    run(["features"], s, available_now=True, spark=spark)
    return s


@pytest.fixture(scope="module")
def signal_lake(spark, base_settings, tmp_path_factory):
    # The interaction signal (docs/simulator.md): an edge no linear baseline can use.
    return _history(spark, own_lake(base_settings, tmp_path_factory.mktemp("signal")), plant_signal=True,
                    signal_kind="interaction", signal_strength=0.6)


@pytest.fixture(scope="module")
def champion_report(signal_lake):
    return training.train(signal_lake, training.TrainConfig(horizon=1, **FAST), echo=lambda *_: None)


def test_a_model_on_the_planted_signal_is_promoted(signal_lake, champion_report):
    rep = champion_report
    assert rep["alias"] == "champion" and rep["gate"]["result"] == "promoted", rep["gate"]
    assert {c["against"] for c in rep["comparisons"]} == set(training.BASELINES)
    assert all(c["passed"] and c["lo"] > 0 for c in rep["comparisons"])
    acc = rep["overall"]["mlp"]["accuracy"]["value"]
    assert 0.53 < acc < 0.65, acc      # the planted edge, nowhere near a leak
    assert rep["symbols"] == ["BTCUSDT-SIMSIG", "ETHUSDT-SIMSIG"]
    assert rep["leakage_guard"]["checked"] == 20
    # The report is consistent: fold test rows add up, intervals hold their point values.
    assert sum(f["test_rows"] for f in rep["folds"]) == rep["tested_rows"]
    for m in rep["overall"].values():
        for v in m.values():
            assert v["lo"] <= v["value"] <= v["hi"]

    # The registry: version, alias, tags; the artifacts hold meta and the reference distribution.
    loaded = model_io.load(signal_lake, "tickcast-h1", "champion")
    assert loaded.version == rep["version"]
    assert loaded.feature_version == features.feature_version()
    # 8 days of history: too short for day-of-week, which the model leaves out (and says so).
    assert loaded.features == [f for f in features.FEATURES if f not in training.WEEKLY] == rep["features"]
    assert loaded.meta["training_end"] == rep["training_end"]
    assert set(loaded.reference) == set(loaded.features)
    assert len(loaded.reference["imbalance"]["shares"]) >= 5
    # The pyfunc model and the direct batch path give the same predictions.
    import mlflow

    rows = training.read_features(signal_lake, features.feature_version()).query("~warmup").head(300)
    X = rows[list(features.FEATURES)]
    pf = mlflow.pyfunc.load_model("models:/tickcast-h1@champion").predict(X)
    p, r = loaded.predictor()(X[loaded.features].to_numpy(float))
    np.testing.assert_allclose(pf["prob_up"].to_numpy(), p, rtol=1e-6)
    np.testing.assert_allclose(pf["pred_return"].to_numpy(), r, rtol=1e-5, atol=1e-12)
    assert ((p > 0) & (p < 1)).all()


def test_a_challenger_equal_to_the_champion_is_not_promoted(signal_lake, champion_report):
    # Retrained on the same data: there are no test rows after the champion's training end, so
    # there is no evidence it is better, and it does not take the alias.
    rep = training.train(signal_lake, training.TrainConfig(horizon=1, **FAST), echo=lambda *_: None)
    assert rep["alias"] == "challenger"
    champ = [c for c in rep["comparisons"] if c["against"].startswith("champion")]
    assert champ and not champ[0]["passed"] and "training end" in champ[0]["against"]
    client = model_io.configure(signal_lake)
    assert str(client.get_model_version_by_alias("tickcast-h1", "champion").version) == champion_report["version"]
    # And the champion's own predictions against themselves: an exact tie, which never passes.
    loaded = model_io.load(signal_lake, "tickcast-h1", "champion")
    data = training.dataset.join(training.read_features(signal_lake, features.feature_version()),
                                 training.dataset.labels(training.read_bars(signal_lake)[["symbol", "window_ms", "close"]], 1))
    p, r = loaded.predictor()(data[loaded.features].to_numpy(float))
    minutes = np.unique(data["window_ms"])
    s = evaluation.Sample(np.searchsorted(minutes, data["window_ms"]), p, r, data["label_return"].to_numpy())
    tie = evaluation.compare(s, s, "itself", evaluation.Bootstrap(len(minutes), 60, 200))
    assert tie.improvement == 0 and not tie.passed


def test_shuffled_labels_find_nothing(signal_lake):
    rep = training.train(signal_lake, training.TrainConfig(horizon=1, shuffle_labels=True, **FAST),
                         echo=lambda *_: None)
    acc, maj = rep["overall"]["mlp"]["accuracy"]["value"], rep["majority_rate"]
    assert maj["lo"] <= acc <= maj["hi"], (acc, maj)
    assert rep["alias"] == "challenger"


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


def test_models_command_lists_promotes_and_rolls_back(signal_lake, champion_report, monkeypatch):
    from tickcast.cli import cli

    for f in ("data_dir", "lake_uri", "checkpoint_uri", "mlflow_uri"):
        monkeypatch.setenv("TICKCAST_" + f.upper(), str(getattr(signal_lake, f)))
    r = CliRunner().invoke(cli, ["models", "--horizon", "1"])
    assert r.exit_code == 0, r.output
    assert f"{champion_report['version']}  champion" in r.output and "challenger" in r.output
    other = str(int(champion_report["version"]) + 1)
    r = CliRunner().invoke(cli, ["models", "promote", other, "--horizon", "1", "--reason", "manual check"])
    assert r.exit_code == 0, r.output
    client = model_io.configure(signal_lake)
    assert str(client.get_model_version_by_alias("tickcast-h1", "champion").version) == other
    assert "manual check" in client.get_model_version("tickcast-h1", other).tags["champion_reason"]
    r = CliRunner().invoke(cli, ["models", "rollback", "--horizon", "1", "--reason", "worse live"])
    assert r.exit_code == 0, r.output
    assert str(client.get_model_version_by_alias("tickcast-h1", "champion").version) == champion_report["version"]
    r = CliRunner().invoke(cli, ["models", "promote", "999", "--horizon", "1", "--reason", "x"])
    assert r.exit_code != 0 and "no version 999" in r.output


def test_a_model_on_pure_noise_is_registered_but_not_promoted(spark, base_settings, tmp_path_factory):
    s = _history(spark, own_lake(base_settings, tmp_path_factory.mktemp("noise")))
    rep = training.train(s, training.TrainConfig(horizon=1, **FAST), echo=lambda *_: None)
    assert rep["alias"] == "challenger" and rep["version"] == "1"
    assert rep["symbols"] == ["BTCUSDT-SIM", "ETHUSDT-SIM"]
    assert not all(c["passed"] for c in rep["comparisons"])
    client = model_io.configure(s)
    assert str(client.get_model_version_by_alias("tickcast-h1", "challenger").version) == "1"
    with pytest.raises(Exception):
        client.get_model_version_by_alias("tickcast-h1", "champion")


def test_real_klines_report_is_produced_and_consistent(spark, base_settings, tmp_path_factory, shared_data):
    import mlflow

    from jobs.backfill import backfill
    from jobs.runner import run

    root = tmp_path_factory.mktemp("real")
    s = own_lake(base_settings, root)
    src = shared_data / "klines_1m" / "BTCUSDT-1m-2024-01.csv.gz"
    short = root / "BTCUSDT-1m-2024-01-short.csv.gz"
    with gzip.open(src, "rt") as f, gzip.open(short, "wt") as out:
        out.writelines(line for _, line in zip(range(14 * 1440), f))      # two weeks, for CI
    backfill(spark, s, [short])
    run(["features"], s, available_now=True, spark=spark)
    rep = training.train(s, training.TrainConfig(horizon=5, **FAST), echo=lambda *_: None)
    assert rep["symbols"] == ["BTCUSDT"]
    assert rep["rows"] == 14 * 1440 - (features.WINDOW - 1) - 5
    assert sum(f["test_rows"] for f in rep["folds"]) == rep["tested_rows"]
    for name, m in rep["overall"].items():
        assert 0 < m["brier"]["value"] < 0.5 and m["brier"]["lo"] <= m["brier"]["value"] <= m["brier"]["hi"]
        assert m["accuracy"]["value"] < 0.6, (name, m["accuracy"])   # above ~60% would mean a leak
    assert rep["zero_returns"]["all_rows"] >= 0
    run_ = mlflow.get_run(rep["run_id"])
    assert run_.data.params["horizon"] == "5" and "mlp_brier" in run_.data.metrics
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{rep['run_id']}/evaluation/report.json"))
    assert report["tested_rows"] == rep["tested_rows"]
    assert "| mlp |" in mlflow.artifacts.load_text(f"runs:/{rep['run_id']}/evaluation/report.md")
