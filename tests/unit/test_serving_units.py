"""The service's parts without a JVM: the LiteRT export check (the converter trap), the model cache's
swap, the incremental latest-row cache over a real Delta table, and the app's errors with no model."""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tickcast import features, model_io, tables
from tickcast.litert import ExportError, LiteModel

F = len(features.FEATURES)


@pytest.fixture(scope="module")
def keras_model():
    from tickcast import modeling

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, F)) * np.geomspace(1e-4, 1e3, F)
    X[:, 5] = 7.0                          # a constant column: unit scale inside the model
    _, export = modeling.build_mlp(X, 0.002, modeling.MlpConfig(hidden=(16, 8)))
    return export, X


def test_litert_export_equals_keras_and_the_nan_converter_route_is_refused(keras_model, tmp_path):
    from tickcast.modeling import batch_predictor

    model, X = keras_model
    path = tmp_path / "model.tflite"
    model_io.export_litert(model, path, X[:64])
    lite = LiteModel(path.read_bytes(), {"features": list(features.FEATURES), "feature_version": "v"})
    p, r = lite.predict(X[64:128])
    kp, kr = batch_predictor(model)(X[64:128])
    np.testing.assert_allclose(p, kp, rtol=1e-5)
    np.testing.assert_allclose(r, kr, rtol=1e-5, atol=1e-9)
    one_p, _ = lite.predict(X[70:71])                    # one row after a batch: resized back
    assert one_p[0] == pytest.approx(p[6], rel=1e-6)

    def concrete_functions(m, out: Path):        # the trap: Normalization constants -> NaN (docs/performance.md)
        import tensorflow as tf

        fn = tf.function(lambda x: m(x, training=False)).get_concrete_function(
            tf.TensorSpec([None, F], tf.float32))
        out.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([fn], m).convert())

    try:
        model_io.export_litert(model, tmp_path / "bad.tflite", X[:64], convert=concrete_functions)
    except ExportError as e:
        assert "not registered" in str(e)
    else:   # if a TensorFlow release fixes the route, the check must still have compared the numbers
        bad = LiteModel((tmp_path / "bad.tflite").read_bytes(), {"features": [""] * F}).predict(X[:64])[0]
        np.testing.assert_allclose(bad, batch_predictor(model)(X[:64])[0], rtol=1e-5)


def _write_state(folder: Path, version: str, model_folder: Path) -> None:
    state = {"synced_at": 1.0, "models": {"1": {"name": "tickcast-h1", "horizon": 1, "folder": str(model_folder),
                                                "champion": {"version": version}, "challengers": [], "error": None}}}
    tmp = folder / "s.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / "state.json")


def test_model_cache_swaps_on_a_new_state_and_keeps_the_old_one_on_a_failed_load(keras_model, tmp_path):
    from serving.models import ModelCache

    model, X = keras_model
    v1 = tmp_path / "m" / "1"
    v1.mkdir(parents=True)
    model_io.export_litert(model, v1 / "model.tflite", X[:16])
    (v1 / "meta.json").write_text(json.dumps({"features": list(features.FEATURES), "feature_version": "fv"}))
    run = tmp_path / "run"
    run.mkdir()
    cache = ModelCache(run, reload_seconds=5.0)
    assert cache.get().served == {}                       # no state yet
    _write_state(run, "1", v1)
    held = cache.get().served[1]
    assert held.version == "1" and held.feature_version == "fv"
    v2 = tmp_path / "m" / "2"
    v2.mkdir()
    for f in ("model.tflite", "meta.json"):
        (v2 / f).write_bytes((v1 / f).read_bytes())
    _write_state(run, "2", v2)
    snap = cache.get()
    assert snap.served[1].version == "2"
    np.testing.assert_allclose(held.model.predict(X[:3])[0], snap.served[1].model.predict(X[:3])[0])
    (tmp_path / "m" / "3").mkdir()                        # a version whose artefact is missing
    _write_state(run, "3", tmp_path / "m" / "3")
    snap = cache.get()
    assert snap.served[1].version == "2" and "failed to load" in snap.errors[1]


def _feature_rows(symbols, start: datetime, minutes: int, fv: str = "fv1"):
    import pyarrow as pa

    rows = []
    for m in range(minutes):
        for k, sym in enumerate(symbols):
            vals = {n: float(m * 10 + k + j / 100) for j, n in enumerate(features.FEATURES)}
            rows.append({"symbol": sym, "window_start": start + timedelta(minutes=m), "feature_version": fv,
                         "close": 100.0 + m, "minutes_in_segment": m, "warmup": False, **vals})
    return pa.Table.from_pylist(rows, schema=tables.FEATURES.schema.arrow_type())


def test_latest_rows_read_only_new_files_and_survive_a_compaction(tmp_path):
    from deltalake import DeltaTable, write_deltalake

    from serving.latest import LatestRows
    from tickcast.settings import load

    s = load({"TICKCAST_DATA_DIR": str(tmp_path)})
    uri = tables.FEATURES.path(s)
    t0 = datetime(2026, 9, 1, tzinfo=timezone.utc)
    cache = LatestRows(s, min_interval=0.0)
    cache.refresh()
    assert cache.error and "no Delta table" in cache.error
    for m in range(5):                       # five appends, like five one-minute batches
        write_deltalake(uri, _feature_rows(["AAA", "BBB"], t0 + timedelta(minutes=m), 1), mode="append")
    cache.refresh()
    assert cache.error is None and cache.files_read == 5
    row = cache.get("BBB", "fv1")
    assert row.window_start_ms == int((t0 + timedelta(minutes=4)).timestamp() * 1000)
    assert row.values["ret_1"] == pytest.approx(0 * 10 + 1)   # the m-th write's first minute is m=0 locally
    write_deltalake(uri, _feature_rows(["AAA"], t0 + timedelta(minutes=5), 1), mode="append")
    cache.refresh()
    assert cache.files_read == 6                              # only the new file
    assert cache.get("AAA", "fv1").window_start_ms == int((t0 + timedelta(minutes=5)).timestamp() * 1000)
    assert cache.get("BBB", "fv1").window_start_ms == int((t0 + timedelta(minutes=4)).timestamp() * 1000)
    cache.refresh()
    assert cache.files_read == 6                              # nothing new: nothing read
    DeltaTable(uri).optimize.compact()                        # files replaced: read again, same answer
    cache.refresh()
    assert cache.get("AAA", "fv1").window_start_ms == int((t0 + timedelta(minutes=5)).timestamp() * 1000)
    assert cache.get("CCC", "fv1") is None and cache.get("AAA", "other") is None


def test_the_feed_hands_the_newest_rows_to_a_reader_and_says_when_it_is_old(tmp_path):
    """The watcher's FeedWriter (delta-rs) -> feed.json -> a worker's Feed (json + numpy): the same rows,
    only the champions' columns, re-read after the next publish; an old feed is a problem."""
    from deltalake import write_deltalake

    from serving.feed import Feed, wanted
    from serving.latest import FeedWriter
    from tickcast.settings import load

    s = load({"TICKCAST_DATA_DIR": str(tmp_path)})
    uri = tables.FEATURES.path(s)
    t0 = datetime(2026, 9, 1, tzinfo=timezone.utc)
    run = tmp_path / "run"
    writer, feed = FeedWriter(s, run), Feed(run, max_age=30)
    assert "not published" in feed.problem()
    writer.publish()
    assert "no Delta table" in feed.problem() and feed.snapshot().get("AAA", "fv1") is None
    for m in range(3):
        write_deltalake(uri, _feature_rows(["AAA", "BBB"], t0 + timedelta(minutes=m), 1), mode="append")
    cols = ["ret_1", "ret_5", "rv_15"]
    state = {"models": {"1": {"champion": {"version": "3"}, "folder": "f", "features": cols, "feature_version": "fv1"},
                        "5": {"champion": None, "folder": None}}}
    assert wanted(state) == {"fv1": sorted(cols)}
    writer.publish(wanted(state))
    snap = feed.snapshot()
    assert feed.problem() is None and snap.symbols() == ["AAA", "BBB"]
    held = writer.latest.get("BBB", "fv1")
    got = snap.get("BBB", "fv1")
    assert got.window_start_ms == held.window_start_ms == int((t0 + timedelta(minutes=2)).timestamp() * 1000)
    assert got.values == {c: held.values[c] for c in cols}
    np.testing.assert_array_equal(got.vector(cols), np.array([[held.values[c] for c in cols]], dtype=np.float32))
    assert np.isnan(got.vector(["rv_60"])).all()            # not published: NaN, the route answers 503
    write_deltalake(uri, _feature_rows(["AAA"], t0 + timedelta(minutes=3), 1), mode="append")
    writer.publish()
    assert feed.snapshot().get("AAA", "fv1").window_start_ms == int((t0 + timedelta(minutes=3)).timestamp() * 1000)
    assert feed.snapshot() is feed.snapshot()                 # unchanged file: not parsed again
    old = Feed(run, max_age=0.0)
    time.sleep(0.01)
    assert "last published" in old.problem()


def test_a_worker_app_imports_no_delta_reader(tmp_path):
    """What a gunicorn worker runs (create_app without the in-process registry) in a fresh interpreter:
    no pyarrow, deltalake, pandas, TensorFlow or MLflow."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from tickcast.settings import load; "
            "from serving.app import create_app; "
            f"s = load({{'TICKCAST_DATA_DIR': {str(tmp_path)!r}}}); "
            f"a = create_app(s, run_folder=Path({str(tmp_path / 'run')!r}), in_process_registry=False); "
            "a.test_client().get('/ready'); a.test_client().get('/metrics'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'pyarrow', 'deltalake', 'pandas', 'tensorflow', 'keras', 'mlflow'}))")
    from tickcast.settings import load

    env = load({"TICKCAST_DATA_DIR": str(tmp_path)}).child_env()
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_app_without_models_answers_json_errors(tmp_path):
    from serving import create_app
    from tickcast.settings import load

    s = load({"TICKCAST_DATA_DIR": str(tmp_path), "TICKCAST_SERVE_MAX_ROWS": "3"})
    c = create_app(s).test_client()
    assert c.get("/health").get_json() == {"status": "live"}
    r = c.get("/ready")
    assert r.status_code == 503 and "silver.features" in r.get_json()["error"]
    assert c.get("/v2/health/ready").status_code == 400
    r = c.post("/v1/predict", json={"horizon": 5, "rows": [{"ret_1": 0.1}]})
    assert r.status_code == 404 and "horizon" in r.get_json()["fields"]
    r = c.post("/v1/predict", data='{"horizon": 5, "rows": [{"ret_1": NaN}]}', content_type="application/json")
    assert r.status_code == 422
    body = json.loads(r.get_data(as_text=True), parse_constant=lambda x: pytest.fail(x))
    assert body["fields"] == ["rows[0].ret_1"]
    big = {"horizon": 5, "rows": [{"ret_1": 0.1}] * 4}
    r = c.post("/v1/predict", json=big)
    assert r.status_code == 413 and r.get_json()["fields"] == ["rows"]
    r = c.post("/v1/predict", data="x" * (3 * 4096 + 64 * 1024 + 1), content_type="application/json")
    assert r.status_code == 413 and "limit" in r.get_json()["error"]
    assert c.get("/nope").get_json()["error"] and c.put("/health").status_code == 405
    spec = c.get("/openapi.json").get_json()
    assert spec["paths"]["/v1/predict"]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/ErrorBody"}
    m = c.get("/metrics").get_data(as_text=True)
    assert 'route="/health"' in m
