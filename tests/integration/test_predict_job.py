"""Job `predict` on real Spark + Delta + MLflow + TensorFlow: streamed predictions equal the model
called directly, the version is stamped, the model loads once per worker, an alias switch during a
running stream, no champion -> wait, refused feature versions, kill -9 and restart."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pandas as pd
import pytest

from testkit.lakes import fork, own_lake
from testkit.wait import until
from tickcast import features, lake, model_io, modeling, tables, training
from tickcast.timeunits import MINUTE_MS as MIN

pytestmark = pytest.mark.spark
T_END = 1_790_000_000_000 // MIN * MIN        # 2026-09-21: a fixed, recent end for the simulated history


def _sim(spark, s, start_ms: int, minutes: int, seed: int = 11):
    from jobs import sim_history
    from tickcast.sources.simulator import SimConfig

    cfg = SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=1.0, seed=seed, start_ms=start_ms, plant_signal=True,
                    signal_kind="interaction", signal_strength=0.6)
    return sim_history.run(spark, s, cfg, minutes)


def _features(spark, s):
    from jobs.runner import run

    run(["features"], s, available_now=True, spark=spark)


def _predictions(s) -> pd.DataFrame:
    if not lake.exists(tables.PREDICTIONS, s):
        return pd.DataFrame(columns=list(tables.PREDICTIONS.schema.names) + ["window_ms"])
    t = lake.read(tables.PREDICTIONS, s)
    df = t.to_pandas()
    df["window_ms"] = lake.to_ms(t["window_start"])
    return df.sort_values(["horizon", "symbol", "window_ms"]).reset_index(drop=True)


def _direct(s, version: str) -> pd.DataFrame:
    """The registered model called directly (one process) on every scorable feature row."""
    loaded = model_io.load(s, "tickcast-h1", version)
    rows = training.read_features(s, features.feature_version())
    rows = rows[~rows["warmup"]].sort_values(["symbol", "window_ms"]).reset_index(drop=True)
    X = rows[loaded.features].to_numpy(float)
    p, r = loaded.predictor()(X)
    base = modeling.baseline_predictions(loaded.meta["baselines"], rows["ret_1"].to_numpy())
    return rows[["symbol", "window_ms"]].assign(prob_up=p, pred_return=r, **base)


@pytest.fixture(scope="module")
def trained(spark, base_settings, tmp_path_factory):
    """Three feature commits of simulated history and a registered model (not yet champion)."""
    root = tmp_path_factory.mktemp("predict")
    s = dataclasses.replace(own_lake(base_settings, root), horizons=(1,), max_files_per_trigger=1)
    start = T_END - 3000 * MIN
    for k in range(3):
        _sim(spark, s, start + k * 1000 * MIN, 1000, seed=11 + k)
        _features(spark, s)
    rep = training.train(s, training.TrainConfig(horizon=1, bootstrap_reps=200, folds=3), echo=lambda *_: None)
    return s, rep


def _fork(trained, root):
    """`trained`'s features and registry, copied: each test changes aliases, versions and rows of its own."""
    s0, rep = trained
    return fork(s0, root, (tables.FEATURES,)), rep


def _run_in_thread(s, spark, writer=None):
    import functools

    from jobs import predict
    from jobs.runner import run

    stop = threading.Event()
    box = {}
    starters = {"predict": functools.partial(predict.start, writer=writer)}
    th = threading.Thread(target=lambda: box.update(last=run(["predict"], s, spark=spark, stop_event=stop,
                                                             starters=starters)),
                          daemon=True)
    th.start()
    return stop, th, box


def _wait(cond, timeout: float, what: str):
    until(cond, timeout, what, interval=1.0)


def _said(capsys, needle: str):
    """A condition: `needle` is in what was printed since the first call (the runner prints from its thread)."""
    seen = []

    def cond() -> bool:
        seen.append(capsys.readouterr().out)
        return needle in "".join(seen)
    return cond


def test_waits_without_champion_then_scores_switches_alias_once_per_batch(spark, trained, capsys, tmp_path):
    from jobs import predict

    s, rep = _fork(trained, tmp_path)
    v1 = rep["version"]
    client = model_io.configure(s)
    if rep["alias"] == "champion":          # start from "no champion yet"
        client.delete_registered_model_alias("tickcast-h1", "champion")
    writer = predict.PredictWriter(s, spark)                 # its scorer counts the model loads
    stop, th, _ = _run_in_thread(s, spark, writer)
    try:
        # The runner asked the gate and held the query back: nothing scored.
        _wait(_said(capsys, "waiting for a champion of tickcast-h1"), 120, "the runner waiting for a champion")
        assert _predictions(s).empty, "scored without a champion"
        model_io.set_alias(client, "tickcast-h1", "champion", v1, "test")
        direct = _direct(s, v1)
        _wait(lambda: len(_predictions(s)) >= len(direct), 300, "predictions of the history")

        got = _predictions(s)
        assert len(got) == len(direct) and not got.duplicated(["symbol", "window_ms", "horizon"]).any()
        assert set(got["model_version"]) == {v1} and set(got["model_name"]) == {"tickcast-h1"}
        m = got.merge(direct, on=["symbol", "window_ms"], suffixes=("", "_direct"))
        assert len(m) == len(direct)
        for c in ("prob_up", "pred_return", "climatology_prob_up", "momentum_prob_up", "momentum_return"):
            np.testing.assert_allclose(m[c], m[c + "_direct"], rtol=1e-5, atol=1e-9, err_msg=c)
        assert (got["feature_version"] == features.feature_version()).all()
        assert (got["target_time"] - got["window_start"] == pd.Timedelta(minutes=1)).all()
        plan = lake.read(tables.PREDICT_BATCHES, s).to_pandas()
        batches = len(plan)                                      # one feature file per batch
        loads = writer.scorer.loads.value                        # {(worker pid, version): loads}
        workers = spark.sparkContext.defaultParallelism          # Python workers that can run the UDF at once
        assert batches > workers, (batches, workers)             # more batches than workers ...
        # ... yet each worker that scored loaded the model exactly once (a load per batch or per call
        # would count more than 1 for a reused worker), and no more workers than can run at once did.
        assert loads and {v for _, v in loads} == {v1}, loads
        assert all(n == 1 for n in loads.values()), loads
        assert len(loads) <= workers, (loads, workers, batches)

        # The alias moves while the stream runs; new bars arrive.
        mv1 = client.get_model_version("tickcast-h1", v1)
        v2 = str(client.create_model_version("tickcast-h1", mv1.source, run_id=mv1.run_id,
                                             tags={"meta": mv1.tags["meta"]}).version)
        model_io.set_alias(client, "tickcast-h1", "champion", v2, "test switch")
        switch_ms = T_END
        _sim(spark, s, T_END, 200, seed=21)
        _features(spark, s)
        # The fork holds the features, not the bars before them: the new minutes start a segment, whose
        # first WINDOW rows are warm-up (never scored).
        new = training.read_features(s, features.feature_version())
        n_new = int(((new["window_ms"] >= switch_ms) & ~new["warmup"]).sum())
        assert n_new > 0
        _wait(lambda: (_predictions(s)["window_ms"] >= switch_ms).sum() >= n_new, 300, "predictions after the switch")
    finally:
        stop.set()
        th.join(120)
    got = _predictions(s)
    assert not got.duplicated(["symbol", "window_ms", "horizon"]).any()      # no bar scored twice
    assert set(got.loc[got["window_ms"] < switch_ms, "model_version"]) == {v1}
    assert set(got.loc[got["window_ms"] >= switch_ms, "model_version"]) == {v2}
    plan = lake.read(tables.PREDICT_BATCHES, s).to_pandas().sort_values("batch_id")
    assert plan.loc[plan["model_version"] == v2, "switched_from"].iloc[0] == v1
    assert (plan["scored"] + plan["skipped_warmup"] + plan["refused_feature_version"] == plan["input_rows"]).all()
    drift = lake.read(tables.DRIFT, s).to_pandas()
    assert set(drift["feature"]) == set(model_io.load(s, "tickcast-h1", v2).features) and (drift["n"] > 0).all()


def test_rows_of_another_feature_version_are_refused_and_counted(spark, trained, tmp_path):
    from jobs.runner import run

    s, rep = _fork(trained, tmp_path)
    client = model_io.configure(s)
    if rep["alias"] != "champion":
        model_io.set_alias(client, "tickcast-h1", "champion", rep["version"], "test")
    run(["predict"], s, available_now=True, spark=spark)          # everything so far is scored
    before = len(_predictions(s))
    batches = set(lake.read(tables.PREDICT_BATCHES, s).to_pandas()["batch_id"])
    t = lake.read(tables.FEATURES, s).to_pandas()
    t = t[~t["warmup"]].head(7).assign(feature_version="0ldversion00", window_start=lambda d: d["window_start"]
                                       + pd.Timedelta(days=400))
    spark.createDataFrame(t, tables.FEATURES.schema.spark_type()).write.format("delta").mode("append") \
        .save(tables.FEATURES.path(s))
    run(["predict"], s, available_now=True, spark=spark)
    plan = lake.read(tables.PREDICT_BATCHES, s).to_pandas()
    plan = plan[~plan["batch_id"].isin(batches)]
    assert len(plan) >= 1 and plan["refused_feature_version"].sum() == 7   # the batches the 7 rows fell into
    assert (plan.loc[plan["refused_feature_version"] > 0, "scored"] == 0).all()
    assert len(_predictions(s)) == before


def test_rerun_after_predictions_committed_but_not_the_plan_keeps_their_version(spark, trained, tmp_path):
    """A live batch appends its predictions, then writes its plan; a crash between the two, then the
    alias moves. The re-run (the next run's first batch) must take the committed version: scoring
    it anew with the new champion would add a second version's rows for the same bars."""
    from pyspark.sql import functions as F

    from jobs import predict
    from tickcast.lake.write import ensure_table

    s, rep = _fork(trained, tmp_path)
    for t in (tables.PREDICTIONS, tables.PREDICT_BATCHES, tables.DRIFT):
        ensure_table(spark, t, s)
    client = model_io.configure(s)
    model_io.set_alias(client, "tickcast-h1", "champion", rep["version"], "test")
    v1 = str(client.get_model_version_by_alias("tickcast-h1", "champion").version)
    # This feature version's rows only (another test of this module adds rows of an old version).
    rows = (spark.read.format("delta").load(tables.FEATURES.path(s)).where("NOT warmup")
            .where(F.col("feature_version") == features.feature_version()))
    first, second = rows.orderBy("window_start").limit(50), rows.orderBy(F.col("window_start").desc()).limit(30)

    class Crash(Exception):
        pass

    def crash(*_):
        raise Crash()

    w = predict.PredictWriter(s, spark)
    w.bind("query-under-test")
    w(first, 0)                                          # a run's first batch: plan, then predictions
    w.plans.write = crash
    with pytest.raises(Crash):
        w(second, 1)                                     # predictions appended, then the crash
    assert set(_predictions(s)["model_version"]) == {v1}
    n = len(_predictions(s))
    assert n == 80

    mv1 = client.get_model_version("tickcast-h1", v1)
    v2 = str(client.create_model_version("tickcast-h1", mv1.source, run_id=mv1.run_id,
                                         tags={"meta": mv1.tags["meta"]}).version)
    model_io.set_alias(client, "tickcast-h1", "champion", v2, "moved during the crash")
    again = predict.PredictWriter(s, spark)              # the restarted driver, same checkpoint
    again.bind("query-under-test")
    again(second, 1)
    got = _predictions(s)
    assert len(got) == n and set(got["model_version"]) == {v1}
    plan = lake.read(tables.PREDICT_BATCHES, s).to_pandas()
    assert sorted(plan["batch_id"]) == [0, 1] and set(plan["model_version"]) == {v1}
    assert int(plan.loc[plan["batch_id"] == 1, "scored"].iloc[0]) == 30

    # A checkpoint started afresh is another query: its batch 1 is scored (by v2), not skipped.
    fresh = predict.PredictWriter(s, spark)
    fresh.bind("another-query")
    fresh(second, 1)
    got = _predictions(s)
    assert len(got) == n + 30 and set(got.loc[got["batch_id"] == 1, "model_version"]) == {v1, v2}
    model_io.set_alias(client, "tickcast-h1", "champion", v1, "back")


def test_alias_removed_mid_run_waits_without_losing_a_batch_then_scores_it_once(spark, trained, tmp_path, capsys):
    """The champion alias disappears while the stream runs: the next batch commits nothing (the query
    stops, the runner waits for a model), and once the alias is back that batch is scored, once."""
    s, rep = _fork(trained, tmp_path)
    client = model_io.configure(s)
    version = rep["version"]
    model_io.set_alias(client, "tickcast-h1", "champion", version, "test")
    n_hist = len(_direct(s, version))
    stop, th, _ = _run_in_thread(s, spark)
    try:
        _wait(lambda: len(_predictions(s)) >= n_hist, 300, "predictions of the history")
        client.delete_registered_model_alias("tickcast-h1", "champion")
        t = lake.read(tables.FEATURES, s).to_pandas()
        t = t[~t["warmup"] & (t["feature_version"] == features.feature_version())].head(12)
        t = t.assign(window_start=t["window_start"] + pd.Timedelta(days=500))
        spark.createDataFrame(t, tables.FEATURES.schema.spark_type()).write.format("delta").mode("append") \
            .save(tables.FEATURES.path(s))
        # The runner says it waits only once the query failed on the new batch (the gate closed).
        _wait(_said(capsys, "predict: waiting for"), 300, "the batch refused and the runner waiting")
        assert len(_predictions(s)) == n_hist and th.is_alive()        # not scored, not lost, still running
        model_io.set_alias(client, "tickcast-h1", "champion", version, "back")
        _wait(lambda: len(_predictions(s)) >= n_hist + 12, 300, "the held batch scored")
    finally:
        stop.set()
        th.join(120)
        if model_io.resolve(client, "tickcast-h1", "champion") is None:
            model_io.set_alias(client, "tickcast-h1", "champion", version, "test")
    got = _predictions(s)
    assert len(got) == n_hist + 12 and not got.duplicated(["symbol", "window_ms", "horizon"]).any()
    plan = lake.read(tables.PREDICT_BATCHES, s).to_pandas()
    assert not plan.duplicated(["batch_id", "horizon"]).any() and set(plan["model_version"]) == {version}
