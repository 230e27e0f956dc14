"""The prediction service through the Flask test client, over the shared pipeline's real tables and
MLflow champion: every route, answers equal to the champion's Keras model and to gold.predictions,
every bad-input class, and schemathesis fuzzing from the service's own /openapi.json."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tickcast import lake, model_io, tables

pytestmark = pytest.mark.spark

RTOL = 1e-5


@pytest.fixture(scope="module")
def served(pipeline, tmp_path_factory):
    """Settings for the app (its own run folder) and the champion as Keras (called directly)."""
    s = dataclasses.replace(pipeline.settings, data_dir=tmp_path_factory.mktemp("serve"),
                            serve_admin_token="admin-secret", serve_max_rows=50)
    keras_champion = model_io.load(s, model_io.model_name(pipeline.horizon), model_io.CHAMPION)
    return s, keras_champion


@pytest.fixture(scope="module")
def app(served):
    from serving import create_app

    app = create_app(served[0])
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def feature_rows(served):
    s, champ = served
    df = lake.read(tables.FEATURES, s).to_pandas()
    df = df[df["feature_version"] == champ.feature_version].sort_values(["symbol", "window_start"])
    return df


def keras(champ, X):
    p, r = champ.predictor()(np.asarray(X, dtype="float32"))
    return p, r


def post(client, body, **kw):
    return client.post("/v1/predict", data=json.dumps(body, allow_nan=True),
                       content_type="application/json", **kw)


def assert_json_error(resp, status, *fields):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = json.loads(resp.get_data(as_text=True))       # strict JSON: a NaN would raise here? no: check below
    assert isinstance(body["error"], str) and body["error"]
    assert "NaN" not in resp.get_data(as_text=True).replace('"NaN"', "") or status != 422
    for f in fields:
        assert f in body["error"], (f, body)
    return body


def test_posted_rows_equal_the_champions_keras_model(client, served, pipeline, feature_rows):
    s, champ = served
    rows = feature_rows.groupby("symbol").tail(20)
    X = rows[champ.features].to_numpy(float)
    body = {"horizon": pipeline.horizon, "rows": [dict(zip(champ.features, map(float, x))) for x in X]}
    resp = post(client, body)
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["X-Model-Version"] == champ.version
    preds = resp.get_json()["predictions"]
    p, r = keras(champ, X)
    np.testing.assert_allclose([x["prob_up"] for x in preds], p, rtol=RTOL)
    np.testing.assert_allclose([x["pred_return"] for x in preds], r, rtol=RTOL, atol=1e-9)
    assert {(x["model_name"], x["model_version"], x["feature_version"], x["horizon"]) for x in preds} == \
        {(champ.name, champ.version, champ.feature_version, pipeline.horizon)}


def test_latest_row_equals_keras_and_the_predict_jobs_row(client, served, pipeline, feature_rows):
    s, champ = served
    preds = lake.read(tables.PREDICTIONS, s).to_pandas()
    matched = 0
    for symbol, g in feature_rows.groupby("symbol"):
        newest = g.iloc[-1]
        resp = client.get(f"/v1/predict/{symbol}?horizon={pipeline.horizon}")
        assert resp.status_code == 200, resp.get_json()
        got = resp.get_json()
        assert resp.headers["X-Model-Version"] == champ.version == got["model_version"]
        ws = newest["window_start"]
        assert got["window_start"] == ws.strftime("%Y-%m-%dT%H:%M:%SZ")
        import time
        assert got["staleness_seconds"] == pytest.approx(time.time() - (ws.timestamp() + 60), abs=5)
        p, r = keras(champ, newest[champ.features].to_numpy(float)[None, :])
        assert got["prob_up"] == pytest.approx(p[0], rel=RTOL)
        assert got["pred_return"] == pytest.approx(r[0], rel=RTOL, abs=1e-9)
        # The Spark predict job's answer for the same bar and version, where it wrote one.
        same = preds[(preds["symbol"] == symbol) & (preds["window_start"] == ws) &
                     (preds["model_version"] == champ.version) & (preds["horizon"] == pipeline.horizon)]
        for _, row in same.iterrows():
            assert got["prob_up"] == pytest.approx(row["prob_up"], rel=RTOL)
            assert got["pred_return"] == pytest.approx(row["pred_return"], rel=RTOL, abs=1e-9)
            matched += 1
    # gold.predictions rows of older bars: POST their feature rows, compare with the job's numbers.
    sample = preds[preds["model_version"] == champ.version].sort_values("window_start").tail(30)
    merged = sample.merge(feature_rows, on=["symbol", "window_start"], suffixes=("_pred", ""))
    merged = merged.rename(columns={"prob_up": "prob_up_pred", "pred_return": "pred_return_pred"})
    assert len(merged) == len(sample) > 0
    body = {"horizon": pipeline.horizon,
            "rows": [dict(zip(champ.features, map(float, x))) for x in merged[champ.features].to_numpy(float)]}
    out = post(client, body).get_json()["predictions"]
    np.testing.assert_allclose([x["prob_up"] for x in out], merged["prob_up_pred"], rtol=RTOL)
    np.testing.assert_allclose([x["pred_return"] for x in out], merged["pred_return_pred"], rtol=RTOL, atol=1e-9)
    assert matched + len(merged) > 0


def test_kserve_v2_metadata_and_infer(client, served, pipeline, feature_rows):
    s, champ = served
    name = champ.name
    meta = client.get(f"/v2/models/{name}")
    assert meta.status_code == 200
    m = meta.get_json()
    assert m["parameters"]["feature_names"] == champ.features and m["versions"] == [champ.version]
    X = feature_rows[champ.features].to_numpy(float)[-7:]
    body = {"id": "r1", "inputs": [{"name": "features", "datatype": "FP32", "shape": list(X.shape),
                                    "data": X.ravel().tolist()}]}
    resp = client.post(f"/v2/models/{name}/infer", json=body)
    assert resp.status_code == 200, resp.get_json()
    out = {o["name"]: o for o in resp.get_json()["outputs"]}
    p, r = keras(champ, X)
    np.testing.assert_allclose(out["prob_up"]["data"], p, rtol=RTOL)
    np.testing.assert_allclose(out["pred_return"]["data"], r, rtol=RTOL, atol=1e-9)
    assert resp.get_json()["id"] == "r1" and resp.headers["X-Model-Version"] == champ.version
    nested = dict(body, inputs=[dict(body["inputs"][0], data=X.tolist())])
    assert client.post(f"/v2/models/{name}/infer", json=nested).get_json()["outputs"] == resp.get_json()["outputs"]
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    assert_json_error(client.get("/v2/models/tickcast-h999"), 404, "tickcast-h999")
    assert_json_error(client.get("/v2/models/resnet"), 404, "resnet")
    bad = dict(body, inputs=[dict(body["inputs"][0], shape=[7, 3])])
    assert_json_error(client.post(f"/v2/models/{name}/infer", json=bad), 422, "shape")


def test_models_health_ready_metrics_openapi(client, served, pipeline):
    s, champ = served
    assert client.get("/health").get_json() == {"status": "live"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    models = client.get("/v1/models").get_json()["models"]
    (h,) = [m for m in models if m["horizon"] == pipeline.horizon]
    assert h["champion"]["version"] == champ.version == h["serving"]
    rep = pipeline.report
    assert h["champion"]["gate"] == {"result": "promoted", "reason": rep["gate"]["reason"]}
    assert h["champion"]["walk_forward"]["brier"] == pytest.approx(rep["overall"][rep["family"]]["brier"]["value"], abs=1e-6)
    spec = client.get("/openapi.json").get_json()
    assert {"/v1/predict", "/v1/predict/{symbol}", "/v1/models", "/v1/models/reload", "/v2/models/{model_name}",
            "/v2/models/{model_name}/infer", "/health", "/ready", "/v2", "/v2/models/{model_name}/ready",
            "/v2/models/{model_name}/versions/{model_version}", "/v2/models/{model_name}/versions/{model_version}/ready",
            "/v2/models/{model_name}/versions/{model_version}/infer"} <= set(spec["paths"])
    assert "415" in spec["paths"]["/v1/predict"]["post"]["responses"]
    assert client.get("/docs/").status_code in (200, 302, 308)
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))}
    routes = {s.labels["route"] for s in fams["tickcast_http_request_duration_seconds"].samples}
    assert {"/health", "/ready", "/v1/models"} <= routes


def test_every_bad_input_class_is_a_json_4xx_naming_the_field(client, served, pipeline, feature_rows):
    s, champ = served
    row = dict(zip(champ.features, map(float, feature_rows[champ.features].to_numpy(float)[-1])))
    f0 = champ.features[0]
    H = pipeline.horizon
    # malformed JSON, not an object, wrong types
    r = client.post("/v1/predict", data="{not json", content_type="application/json")
    assert_json_error(r, 422)
    assert_json_error(post(client, [1, 2]), 422)
    assert_json_error(post(client, {"horizon": "1", "rows": [row]}), 422, "horizon")
    assert_json_error(post(client, {"horizon": H, "rows": [dict(row, **{f0: "0.5"})]}), 422, f"rows[0].{f0}")
    assert_json_error(post(client, {"horizon": H, "rows": [dict(row, **{f0: True})]}), 422, f"rows[0].{f0}")
    # NaN / Infinity as literals and as strings: 422 naming the field, never echoing it
    for bad in (math.nan, math.inf, -math.inf, "NaN", "Infinity", "-Infinity"):
        r = post(client, {"horizon": H, "rows": [row, dict(row, **{f0: bad})]})
        body = assert_json_error(r, 422, f"rows[1].{f0}")
        json.loads(r.get_data(as_text=True), parse_constant=lambda c: pytest.fail(f"body holds {c}"))
        assert body["fields"] == [f"rows[1].{f0}"]
    # beyond float32: named too
    assert_json_error(post(client, {"horizon": H, "rows": [dict(row, **{f0: 1e300})]}), 422, f"rows[0].{f0}")
    # missing and extra fields
    missing = {k: v for k, v in row.items() if k != f0}
    assert_json_error(post(client, {"horizon": H, "rows": [missing]}), 422, f0)
    assert_json_error(post(client, {"horizon": H, "rows": [dict(row, bogus=1.0)]}), 422, "bogus")
    assert_json_error(post(client, {"horizon": H, "rows": [row], "extra": 1}), 422, "extra")
    assert_json_error(post(client, {"horizon": H, "rows": []}), 422, "rows")
    # too many rows, too large a body
    assert_json_error(post(client, {"horizon": H, "rows": [row] * (s.serve_max_rows + 1)}), 413, "rows")
    big = json.dumps({"horizon": H, "rows": [row] * 5000})
    assert_json_error(client.post("/v1/predict", data=big, content_type="application/json"), 413)
    # unknown horizon and symbol
    assert_json_error(post(client, {"horizon": H + 1000, "rows": [row]}), 404, "horizon")
    assert_json_error(client.get(f"/v1/predict/NOPEUSDT?horizon={H}"), 404, "NOPEUSDT")
    assert_json_error(client.get(f"/v1/predict/{pipeline.symbols[0]}?horizon={H + 1000}"), 404, "horizon")
    assert_json_error(client.get(f"/v1/predict/{pipeline.symbols[0]}?horizon=abc"), 422, "horizon")
    assert_json_error(client.get(f"/v1/predict/{pipeline.symbols[0]}"), 422, "horizon")
    # unknown route and method: JSON too
    assert_json_error(client.get("/nope"), 404)
    assert_json_error(client.delete("/v1/predict"), 405)
    # reload needs the admin token
    assert_json_error(client.post("/v1/models/reload"), 401, "Bearer")
    assert_json_error(client.post("/v1/models/reload", headers={"Authorization": "Bearer wrong"}), 401)
    ok = client.post("/v1/models/reload", headers={"Authorization": "Bearer admin-secret"})
    assert ok.status_code == 200 and ok.get_json()["serving"] == {str(H): champ.version}


def test_models_shows_the_newest_live_scores_of_the_champion(served, pipeline, spark, tmp_path):
    """/v1/models' live scores are gold.model_scores' newest batch. The shared pipeline scored its
    history after the fact (n = 0 everywhere), so a fork of its lake gets one more batch: the
    outcomes job's own `model_scores` over its outcomes as if each had been predicted live."""
    import pandas as pd

    from jobs.outcomes import model_scores
    from serving import create_app
    from testkit.lakes import fork
    from tickcast import schemas

    s0, champ = served
    s = dataclasses.replace(fork(s0, tmp_path / "lake", tables=None, registry=False), mlflow_uri=s0.mlflow_uri,
                            data_dir=tmp_path / "run")
    t = lake.read(tables.OUTCOMES, s)
    o = t.to_pandas().assign(target_time=lake.to_ms(t["target_time"]), after_training_end=True,
                             made_before_outcome=True)
    sc = model_scores(o, int(o["target_time"].max()))
    old = lake.read(tables.MODEL_SCORES, s, columns=["batch_id"]).to_pandas()
    sc = sc.assign(computed_at=pd.Timestamp.now(tz="UTC"), batch_id=int(old["batch_id"].max()) + 1)
    spark.createDataFrame(sc[list(schemas.MODEL_SCORES.names)], tables.MODEL_SCORES.schema.spark_type()) \
        .write.format("delta").mode("append").save(tables.MODEL_SCORES.path(s))

    (h,) = [m for m in create_app(s).test_client().get("/v1/models").get_json()["models"]
            if m["horizon"] == pipeline.horizon]
    last = sc[(sc["model_version"] == champ.version) & (sc["symbol"] == "*")].set_index("window")
    assert {x["window"] for x in h["champion"]["live"]} == set(last.index) == {"1h", "24h"}
    for live in h["champion"]["live"]:
        w = last.loc[live["window"]]
        assert live["n"] == w["n"] > 0, live
        assert live["hit_rate"] == pytest.approx(w["accuracy"]) and live["brier"] == pytest.approx(w["brier"])
        for b in ("climatology", "momentum"):
            assert live["baselines"][b]["brier"] == pytest.approx(w[f"{b}_brier"])
            assert live["baselines"][b]["hit_rate"] == pytest.approx(w[f"{b}_accuracy"])
def test_bodies_that_are_not_json_name_the_problem_on_every_post_route(client, served, pipeline, feature_rows):
    """JSON without a Content-Type is read as JSON on every route (protocol clients send none); a
    declared non-JSON type is a 415 naming application/json (curl -d's form type included); empty,
    non-UTF-8 and non-JSON bodies are named as such, never as a field's validation message."""
    s, champ = served
    X = feature_rows[champ.features].to_numpy(float)[-2:]
    v1 = json.dumps({"horizon": pipeline.horizon, "rows": [dict(zip(champ.features, map(float, x))) for x in X]})
    v2 = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": list(X.shape),
                                 "data": X.ravel().tolist()}]})
    routes = {"/v1/predict": v1, f"/v2/models/{champ.name}/infer": v2,
              f"/v2/models/{champ.name}/versions/{champ.version}/infer": v2}
    for route, good in routes.items():
        bare, typed = client.post(route, data=good.encode()), client.post(route, data=good, content_type="application/json")
        assert "Content-Type" not in bare.request.headers
        assert bare.status_code == typed.status_code == 200 and bare.get_json() == typed.get_json(), route
        for ctype in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
            for data in (good, b"", b"\xff\xfe"):
                body = assert_json_error(client.post(route, data=data, content_type=ctype), 415, "application/json",
                                         ctype.split(";")[0])
                assert body["fields"] == ["Content-Type"]
        for ctype in (None, "application/json"):
            assert_json_error(client.post(route, data=b"", content_type=ctype), 422, "body is empty")
            assert_json_error(client.post(route, data=b"  \n", content_type=ctype), 422, "body is empty")
        assert_json_error(client.post(route, data=b"\xff\xfe" + good.encode(), content_type="application/json"), 422,
                          "not UTF-8")
        assert_json_error(client.post(route, data=b"\xff\xfe" + good.encode()), 415, "not UTF-8", "application/json")
        assert_json_error(client.post(route, data=b"horizon=1&rows=2"), 415, "not JSON", "application/json")
        assert_json_error(client.post(route, data=b"{not json", content_type="application/json"), 422, "JSON")
        assert client.post(route, data=good, content_type="application/json; charset=utf-8").status_code == 200
    admin = {"Authorization": "Bearer admin-secret"}
    for data, ctype in ((b"a=1", "application/x-www-form-urlencoded"), (b"\xff\xfe", None), (b"{}", "application/json")):
        assert_json_error(client.post("/v1/models/reload", data=data, content_type=ctype, headers=admin), 400,
                          "takes no body")
    assert client.post("/v1/models/reload", data=b"", content_type="application/x-www-form-urlencoded",
                       headers=admin).status_code == 200


def test_v2_server_metadata_versions_readiness_and_binary_tensors(client, served, pipeline, feature_rows):
    s, champ = served
    name = champ.name
    others = [v["version"] for v in model_io.versions(model_io.configure(s), name)
              if model_io.CHAMPION not in v["aliases"]]
    assert others, "the pipeline registers every family: one version is not the champion"
    other = others[0]
    assert client.get("/v2").get_json() == {"name": "tickcast", "version": __import__("tickcast").__version__,
                                            "extensions": ["binary_tensor_data"]}
    for path in (f"/v2/models/{name}/ready", f"/v2/models/{name}/versions/{champ.version}/ready"):
        r = client.get(path)
        assert r.status_code == 200 and r.get_json() == {"name": name, "ready": True}, path
    r = client.get(f"/v2/models/{name}/versions/{other}/ready")
    body = assert_json_error(r, 400, f"v{other} is registered but not served", f"v{champ.version}")
    assert body["ready"] is False and body["name"] == name
    assert_json_error(client.get(f"/v2/models/{name}/versions/9999/ready"), 404, "unknown version")
    assert_json_error(client.get("/v2/models/tickcast-h999/ready"), 404, "tickcast-h999")
    assert client.get(f"/v2/models/{name}/versions/{champ.version}").get_json() == \
        client.get(f"/v2/models/{name}").get_json()
    assert_json_error(client.get(f"/v2/models/{name}/versions/{other}"), 404, "registered but not served")
    assert_json_error(client.get(f"/v2/models/{name}/versions/9999"), 404, "unknown version '9999'")
    X = feature_rows[champ.features].to_numpy(float)[-5:].astype("float32")
    tensor = {"name": "features", "datatype": "FP32", "shape": list(X.shape)}
    good = {"inputs": [dict(tensor, data=X.ravel().tolist())]}
    assert_json_error(client.post(f"/v2/models/{name}/versions/{other}/infer", json=good), 404,
                      "registered but not served", f"v{champ.version}")
    want = client.post(f"/v2/models/{name}/infer", json=good).get_json()["outputs"]
    want = {o["name"]: np.asarray(o["data"], dtype="float32") for o in want}

    def binary(head: dict, blob: bytes, length: int | None = None):
        text = json.dumps(head).encode()
        return client.post(f"/v2/models/{name}/infer", data=text + blob,
                           headers={"Inference-Header-Content-Length": str(length or len(text))},
                           content_type="application/octet-stream")

    raw = X.astype("<f4").tobytes()
    head = {"id": "b1", "inputs": [dict(tensor, parameters={"binary_data_size": len(raw)})],
            "outputs": [{"name": "pred_return", "parameters": {"binary_data": True}}, {"name": "prob_up"}]}
    r = binary(head, raw)
    assert r.status_code == 200 and r.mimetype == "application/octet-stream"
    n = int(r.headers["Inference-Header-Content-Length"])
    meta, rest = json.loads(r.data[:n]), r.data[n:]
    assert meta["id"] == "b1" and [o["name"] for o in meta["outputs"]] == ["pred_return", "prob_up"]
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == len(rest) == 4 * len(X)
    np.testing.assert_array_equal(np.frombuffer(rest, "<f4"), want["pred_return"])
    np.testing.assert_array_equal(np.asarray(meta["outputs"][1]["data"], "float32"), want["prob_up"])
    # FP64 in binary, every output as JSON: the same numbers.
    raw64 = X.astype("<f8").tobytes()
    r = binary({"inputs": [dict(tensor, datatype="FP64", parameters={"binary_data_size": len(raw64)})]}, raw64)
    assert r.status_code == 200 and r.is_json
    np.testing.assert_array_equal(np.asarray(r.get_json()["outputs"][0]["data"], "float32"), want["prob_up"])
    # A subset of the outputs as JSON; an output the model does not have.
    r = client.post(f"/v2/models/{name}/infer", json=dict(good, outputs=[{"name": "pred_return"}]))
    assert [o["name"] for o in r.get_json()["outputs"]] == ["pred_return"]
    assert_json_error(client.post(f"/v2/models/{name}/infer", json=dict(good, outputs=[{"name": "logits"}])),
                      422, "outputs[0].name", "logits")
    # Broken binary framing: each a 4xx naming the header or the size.
    bad_head = {"inputs": [dict(tensor, parameters={"binary_data_size": len(raw)})]}
    assert_json_error(binary(bad_head, raw, length=10**6), 400, "Inference-Header-Content-Length")
    assert_json_error(binary(bad_head, raw[:-4]), 400, "binary_data_size")
    assert_json_error(binary(bad_head, raw + b"\0" * 4), 400, "4 bytes after")
    assert_json_error(binary({"inputs": [dict(tensor, datatype="INT32", parameters={"binary_data_size": len(raw)})]},
                             raw), 422, "datatype")
    assert_json_error(binary({"inputs": [dict(tensor, data=X.ravel().tolist(), parameters={"binary_data_size": 4})]},
                             raw[:4]), 400, "both data and")
    assert_json_error(client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor]}), 422, "inputs[0].data")


def test_api_keys_and_no_champion(served, pipeline, feature_rows, tmp_path):
    from serving import create_app

    s, champ = served
    keyed = create_app(dataclasses.replace(s, serve_api_keys=("k1", "k2"), data_dir=tmp_path / "a")).test_client()
    row = dict(zip(champ.features, map(float, feature_rows[champ.features].to_numpy(float)[-1])))
    body = {"horizon": pipeline.horizon, "rows": [row]}
    assert_json_error(post(keyed, body), 401, "X-API-Key")
    assert_json_error(post(keyed, body, headers={"X-API-Key": "k3"}), 401)
    assert post(keyed, body, headers={"X-API-Key": "k2"}).status_code == 200
    sym = pipeline.symbols[0]
    assert_json_error(keyed.get(f"/v1/predict/{sym}?horizon={pipeline.horizon}"), 401)
    assert keyed.get("/health").status_code == 200          # ops routes stay open
    # A registry whose only model has no champion: 503 with the gate's reason.
    import mlflow

    store = tmp_path / "mlflow"
    s2 = dataclasses.replace(s, mlflow_uri=f"sqlite:///{store / 'mlflow.db'}", data_dir=tmp_path / "b")
    client = model_io.configure(s2)
    name = model_io.model_name(pipeline.horizon)
    with mlflow.start_run():
        import pandas as pd

        _, v = model_io.log_model(champ.model, champ.meta, champ.reference,
                                  pd.DataFrame([row], columns=champ.features))
    client.set_model_version_tag(name, v, "gate_reason", "does not beat momentum (Brier gain -0.001)")
    model_io.set_alias(client, name, model_io.CHALLENGER, v, "does not beat momentum")
    c2 = create_app(s2).test_client()
    r = post(c2, body)
    assert_json_error(r, 503, "does not beat momentum")
    assert c2.get("/ready").status_code == 200       # ready: every horizon that has a champion serves it
    (m,) = c2.get("/v1/models").get_json()["models"]
    assert m["challengers"][0]["version"] == v and m["champion"] is None and "no champion" in m["error"]


def test_lost_offsets_are_a_metric(served, spark, tmp_path):
    """ops.lost_offsets rows written the way ingest writes them (its table, its writer) show on /metrics
    as tickcast_lost_offsets per topic and partition, summed over batches like `up`'s status line."""
    from prometheus_client.parser import text_string_to_metric_families

    from jobs.delta_io import utc
    from tickcast.engine.arrow_frames import arrow_rows
    from tickcast.lake.write import append_once, ensure_table
    from serving import create_app
    from tickcast import data_loss, schemas

    s, _ = served
    s3 = dataclasses.replace(s, data_dir=tmp_path, lake_uri=str(tmp_path / "delta"))
    path = ensure_table(spark, tables.LOST_OFFSETS, s3)
    now = utc(1_767_000_000_000)
    for batch, recs in ((3, [("ticks", 0, 1000, 3000, 500), ("ticks", 1, 10, 20, 3)]),
                        (7, [("ticks", 0, 5000, 5100, 0)])):
        rows = [("ingest", t, p, batch, a, b, r, b - a - r, now) for t, p, a, b, r in recs]
        append_once(arrow_rows(rows, schemas.LOST_OFFSETS.spark_type()), path, "ingest-lost", batch)
    want = {("ticks", 0): 1600, ("ticks", 1): 7}
    assert data_loss.lost_offsets(s3) == want
    text = create_app(s3).test_client().get("/metrics").get_data(as_text=True)
    (fam,) = [f for f in text_string_to_metric_families(text) if f.name == "tickcast_lost_offsets"]
    assert {(x.labels["topic"], int(x.labels["partition"])): x.value for x in fam.samples} == want


# --- schemathesis: fuzz every operation from the service's own OpenAPI document -------------------

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

fuzz_schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@fuzz_schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_from_the_openapi_document(case):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    resp = case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                          response_schema_conformance])
    if case.method.upper() not in ("HEAD", "OPTIONS"):   # every body is strict JSON (no NaN/Infinity)
        assert resp.headers["content-type"][0].startswith("application/json"), (case.method, resp.status_code)
        json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))


def test_a_version_registered_before_litert_is_converted_once_with_a_warning(served, feature_rows, tmp_path, caplog):
    """A version whose artifacts hold only the Keras model (as registered before this change)."""
    import mlflow
    import pandas as pd

    from serving import registry

    s, champ = served
    s2 = dataclasses.replace(s, mlflow_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", data_dir=tmp_path)
    client = model_io.configure(s2)
    kpath, mpath = tmp_path / "model.keras", tmp_path / "meta.json"
    champ.model.save(kpath)
    mpath.write_text(json.dumps(champ.meta))
    example = pd.DataFrame(feature_rows[champ.features].to_numpy(float)[-5:], columns=champ.features)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=model_io.KerasForecaster(),
                                       artifacts={"keras": str(kpath), "meta": str(mpath)},
                                       input_example=example, registered_model_name=champ.name)
    version = str(info.registered_model_version)
    model_io.set_alias(client, champ.name, model_io.CHAMPION, version, "registered before LiteRT")
    with caplog.at_level("WARNING"):
        state = registry.sync(s2, tmp_path / "run")
    assert any("no LiteRT artefact" in r.getMessage() for r in caplog.records)
    folder = Path(state["models"][str(champ.meta["horizon"])]["folder"])
    lite = __import__("tickcast.litert", fromlist=["LiteModel"]).LiteModel.open(folder)
    X = feature_rows[champ.features].to_numpy(float)[-20:]
    p, r = keras(champ, X)
    np.testing.assert_allclose(lite.predict(X)[0], p, rtol=RTOL)
    mtime = (folder / "model.tflite").stat().st_mtime_ns
    caplog.clear()
    registry.sync(s2, tmp_path / "run")                  # once: the cached artefact is reused
    assert (folder / "model.tflite").stat().st_mtime_ns == mtime
    assert not any("no LiteRT artefact" in r.getMessage() for r in caplog.records)
