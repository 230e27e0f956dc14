"""`tickcast backtest` on simulated histories written by the jobs' own code (bars job transforms, features job).

- regime change: the planted signal flips sign halfway through the replayed range; the champion
  trained before the flip keeps serving (the live rule) and scores below the baselines after it;
- no signal: across 10+ periods the gate promotes nothing (or nothing that beats the baselines by
  more than noise); serving every retrain's newest model regardless, the strategy loses the fees;
- leak check: every scored row is after the training end of the model that scores it;
- a range without data stops with a message naming the range that exists;
- the run's rows in gold.backtest and its MLflow run (artefacts, no registered model).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import own_lake
from tests.integration.test_dashboard import browser  # noqa: F401  (the module-scoped Chromium fixture)
from tickcast import lake, tables
from tickcast.timeunits import MINUTE_MS as MIN

pytestmark = pytest.mark.spark

HOUR = 60 * MIN
END_MS = 1_790_000_000_000 // HOUR * HOUR
WINDOW_MIN = 1440                    # a day of minutes to train on before each period
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _history(spark, s, minutes: int, seed: int, **sim) -> None:
    from jobs import sim_history
    from jobs.runner import run
    from tickcast.sources.simulator import SimConfig

    cfg = SimConfig(symbols=SYMBOLS, rate=1.0, seed=seed, start_ms=END_MS - minutes * MIN, **sim)
    assert sim_history.run(spark, s, cfg, minutes) > 0
    run(["features"], s, available_now=True, spark=spark)


def _config(start_ms: int, periods: int, every_min: int, **kw):
    from tickcast import backtest, training

    # The planted edge is strong (a day of minutes must show it): direction accuracy near 60%, the
    # gate's leak threshold for real data, so the threshold is raised for these simulated rows.
    tcfg = training.TrainConfig(horizon=1, folds=2, bootstrap_reps=300, families=("linear",), leak_accuracy=0.75)
    return backtest.BacktestConfig(horizon=1, start_ms=start_ms, end_ms=start_ms + periods * every_min * MIN,
                                   window_ms=WINDOW_MIN * MIN, every_ms=every_min * MIN, train=tcfg, **kw)


REGIME_PERIODS, REGIME_EVERY = 4, 240
REGIME_START = END_MS - REGIME_PERIODS * REGIME_EVERY * MIN
FLIP_MS = REGIME_START + REGIME_PERIODS // 2 * REGIME_EVERY * MIN


@pytest.fixture(scope="module")
def regime(spark, base_settings, tmp_path_factory):
    """A planted linear signal whose sign flips halfway through the replayed periods; the backtest
    recorded (MLflow run + gold.backtest)."""
    from tickcast import backtest

    s = own_lake(base_settings, tmp_path_factory.mktemp("backtest-regime"))
    _history(spark, s, WINDOW_MIN + REGIME_PERIODS * REGIME_EVERY, seed=11, plant_signal=True, signal_kind="linear",
             signal_strength=1.0, signal_flip_ms=FLIP_MS)
    result = backtest.backtest(s, _config(REGIME_START, REGIME_PERIODS, REGIME_EVERY), echo=print)
    return s, result


def test_regime_change_the_old_champion_falls_below_the_baselines(regime):
    _, result = regime
    ps = result["periods"]
    assert len(ps) == REGIME_PERIODS
    before = [p for p in ps if p["end_ms"] <= FLIP_MS]
    after = [p for p in ps if p["start_ms"] >= FLIP_MS]
    # Before the flip the planted edge is found and served, and it beats both baselines.
    assert before[0]["promoted"], before[0]["gate_reason"]
    for p in before:
        sc = p["scores"]
        assert sc["model"]["accuracy"]["value"] > max(sc["climatology"]["accuracy"]["value"],
                                                     sc["momentum"]["accuracy"]["value"]), p
    # After it, whatever still serves a model trained before the flip scores below both baselines.
    old = [p for p in after if p["served"] is not None and p["served_training_end_ms"] < FLIP_MS]
    assert old, "no period after the flip was served by a pre-flip champion"
    assert old[0]["period"] == REGIME_PERIODS // 2
    for p in old:
        sc = p["scores"]
        acc = sc["model"]["accuracy"]
        assert acc["value"] < min(sc["climatology"]["accuracy"]["value"], sc["momentum"]["accuracy"]["value"]), p
        assert acc["hi"] < 0.5, acc           # the reversed signal: significantly wrong, not noise
        assert sc["model"]["brier"]["value"] > sc["climatology"]["brier"]["value"]


def test_leak_check_every_scored_row_is_after_its_models_training_end(regime):
    _, result = regime
    rows = result["rows"]
    ends = {p["served"]: p["served_training_end_ms"] for p in result["periods"] if p["served"]}
    served = rows[rows["served_version"].notna()]
    assert len(served) > 0
    train_end = served["served_version"].map(ends).to_numpy(np.int64)
    assert (served["window_ms"].to_numpy(np.int64) > train_end).all()
    for p in result["periods"]:
        # The retrain read bars up to its period's start only: its model's training data ends before it.
        if p["served"]:
            assert p["served_training_end_ms"] < p["start_ms"] <= p["first_scored_ms"]
        assert rows.loc[rows["period"] == p["period"], "window_ms"].between(p["start_ms"], p["end_ms"] - 1).all()


def test_results_land_in_gold_backtest_and_mlflow(regime):
    import mlflow

    from tickcast import model_io
    from tickcast.backtest.output import EXPERIMENT

    s, result = regime
    t = lake.read(tables.BACKTEST, s).to_pandas().sort_values("period")
    assert list(t["run_id"].unique()) == [result["run_id"]]
    assert t["period"].tolist() == list(range(REGIME_PERIODS))
    for (_, r), p in zip(t.iterrows(), result["periods"]):
        assert r["served_version"] == p["served"] and r["gate"] == p["gate"]
        assert r["rows"] == p["rows"]
        if p["served"]:
            assert r["accuracy"] == pytest.approx(p["scores"]["model"]["accuracy"]["value"])
        assert r["climatology_accuracy"] == pytest.approx(p["scores"]["climatology"]["accuracy"]["value"])
        assert r["strategy_return"] == pytest.approx(p["strategy"]["net"]["value"])
        assert r["buy_hold_return"] == pytest.approx(p["strategy"]["buy_hold"])
    client = model_io.configure(s)
    run = client.get_run(result["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    arts = {a.path for a in client.list_artifacts(result["run_id"], "backtest")}
    assert {"backtest/backtest.json", "backtest/report.md", "backtest/periods.csv"} <= arts
    assert model_io.registered_names(client) == []          # backtest models are never registered
    assert mlflow.get_tracking_uri() == s.mlflow_uri


NULL_PERIODS, NULL_EVERY = 10, 120


@pytest.fixture(scope="module")
def no_signal(spark, base_settings, tmp_path_factory):
    s = own_lake(base_settings, tmp_path_factory.mktemp("backtest-null"))
    _history(spark, s, WINDOW_MIN + NULL_PERIODS * NULL_EVERY, seed=5)
    return s


def test_no_signal_the_gate_promotes_nothing_beyond_noise(no_signal):
    from tickcast import backtest

    start = END_MS - NULL_PERIODS * NULL_EVERY * MIN
    result = backtest.backtest(no_signal, _config(start, NULL_PERIODS, NULL_EVERY), echo=lambda *_: None,
                               record=False)
    ps = result["periods"]
    assert len(ps) == NULL_PERIODS and all(p["gate"] != "failed" for p in ps)
    for p in ps:
        if p["promoted"]:     # promoted by chance: its next period is within noise of the baselines
            sc = p["scores"]
            for b in ("climatology", "momentum"):
                assert sc["model"]["accuracy"]["lo"] <= sc[b]["accuracy"]["value"] <= sc["model"]["accuracy"]["hi"]
    promoted = sum(p["promoted"] for p in ps)
    assert promoted <= 1, [p["gate_reason"] for p in ps]
    assert result["overall"]["gate"]["judged"] == NULL_PERIODS


def test_no_signal_served_anyway_the_strategy_only_loses_the_fees(no_signal):
    from tickcast import backtest

    start = END_MS - NULL_PERIODS * NULL_EVERY * MIN
    result = backtest.backtest(no_signal, _config(start, NULL_PERIODS, NULL_EVERY, serve="newest"),
                               echo=lambda *_: None, record=False)
    st = result["overall"]["strategy"]
    assert st["changes"] > 20
    assert st["gross"]["lo"] <= 0 <= st["gross"]["hi"]            # no edge before fees
    assert st["net"]["value"] < 0
    # What it lost is about the fees: the net return is the gross one less the fees, and the fees dominate.
    assert np.log1p(st["net"]["value"]) == pytest.approx(np.log1p(st["gross"]["value"]) + np.log1p(-st["fees"]), abs=1e-9)
    assert abs(st["gross"]["value"]) < st["fees"]
    assert "only loses the fees" in st["verdict"]
    assert "only loses the fees" in result["report"]


def test_a_range_without_data_names_the_range_that_exists(no_signal):
    from tickcast import cli
    from tickcast.training.config import iso

    env = {"TICKCAST_DATA_DIR": str(no_signal.data_dir), "TICKCAST_LAKE_URI": no_signal.lake_uri,
           "TICKCAST_MLFLOW_URI": no_signal.mlflow_uri}
    res = CliRunner().invoke(cli.cli, ["backtest", "--horizon", "1", "--start", "2020-01-01", "--end", "2020-02-01",
                                       "--candidates", "linear", "--window", "1d", "--retrain-every", "2h"], env=env)
    assert res.exit_code != 0
    first = lake.to_ms(lake.read(tables.FEATURES, no_signal, columns=["window_start"])["window_start"])
    assert "no feature rows between 2020-01-01T00:00:00Z and 2020-02-01T00:00:00Z" in res.output
    assert f"holds {iso(int(first.min()))} .. {iso(int(first.max()))}" in res.output
    assert not lake.exists(tables.BACKTEST, no_signal)          # nothing written



def test_dashboard_backtest_page_draws_the_table(regime, browser):  # noqa: F811
    """The Backtest page in headless Chromium: the plotted values are gold.backtest's."""
    from dashboard import ids
    from tests.integration.test_dashboard import REFRESH_S, Page, _serve, _stop

    s, result = regime
    t = lake.read(tables.BACKTEST, s).to_pandas().sort_values("period").reset_index(drop=True)
    url, proc = _serve(dataclasses.replace(s, dashboard_refresh_seconds=REFRESH_S))
    try:
        with Page(browser) as page:
            page.goto(url + "/backtest")
            acc = page.wait_traces(ids.BACKTEST_ACCURACY, lambda tr: len(tr) == 3 and len(tr[0]["x"]) == len(t))
            by_name = {tr["name"]: tr["y"] for tr in acc}
            for name, col in (("served model", "accuracy"), ("climatology", "climatology_accuracy"),
                              ("momentum", "momentum_accuracy")):
                want = t[col].to_numpy(float)
                got = np.array([np.nan if v is None else v for v in by_name[name]], float)
                np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)
            ret = page.wait_traces(ids.BACKTEST_RETURN, lambda tr: len(tr) == 3)
            by_name = {tr["name"]: tr["y"] for tr in ret}
            np.testing.assert_allclose(by_name["strategy after fees"], np.cumprod(1 + t["strategy_return"]) - 1,
                                       rtol=1e-9)
            np.testing.assert_allclose(by_name["buy-and-hold"], np.cumprod(1 + t["buy_hold_return"]) - 1, rtol=1e-9)
            served = [f"v{v}" for v in t["served_version"].dropna().unique()]
            text = page.text(f"#{ids.BACKTEST_PERIODS}")
            assert all(v in text for v in served) and result["run_id"][:8] in page.text(f"#{ids.BACKTEST_RUN}")
            page.screenshot("backtest")
            assert page.errors == []
    finally:
        _stop(proc)
