"""The Open Inference Protocol as stock clients see it: Triton's and KServe's Python clients from
PyPI (in .venv-oip, scripts/setup-oip-clients.sh, run by `make test`) against `tickcast serve` under
gunicorn over the shared pipeline's champion. Every V2 route; answers equal `/v1`'s for the same rows;
bad requests are 4xx in the protocol's error shape. And curl's own defaults against /v1."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from serving import launch
from tests.conftest import free_port
from tickcast import lake, model_io, tables

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
CLIENTS_PY = REPO / ".venv-oip" / "bin" / "python"


@pytest.fixture(scope="module")
def service(pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("oip")
    s = launch.with_port(dataclasses.replace(pipeline.settings, data_dir=root), free_port(), workers=2)
    proc = launch.start(s, log=root / "serve.log")
    try:
        launch.wait_ready(s, proc, timeout=120)
        yield s
    finally:
        launch.stop(proc)
        print((root / "serve.log").read_text()[-3000:])


@pytest.fixture(scope="module")
def model(service, pipeline):
    """(name, champion version, another registered version, feature names, rows of the champion's features)."""
    s = service
    client = model_io.configure(s)
    name = model_io.model_name(pipeline.horizon)
    versions = model_io.versions(client, name)
    (champ,) = [v["version"] for v in versions if model_io.CHAMPION in v["aliases"]]
    others = [v["version"] for v in versions if model_io.CHAMPION not in v["aliases"]]
    assert others, "the pipeline registers every family: one version is not the champion"
    status, _, body = call(s, "GET", f"/v2/models/{name}")
    features = json.loads(body)["parameters"]["feature_names"]
    df = lake.read(tables.FEATURES, s).to_pandas()
    df = df[df["feature_version"] == json.loads(body)["parameters"]["feature_version"]]
    rows = df.sort_values(["symbol", "window_start"]).groupby("symbol").tail(4)[features].to_numpy(float)
    return name, champ, others[0], features, rows


def call(s, method, path, body: bytes | None = None, headers=None):
    req = urllib.request.Request(launch.url(s) + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def clients(service, model, tmp_path_factory):
    """What the stock clients answered (tests/integration/oip_clients.py, run with .venv-oip's Python)."""
    if not CLIENTS_PY.exists():
        pytest.fail(f"{CLIENTS_PY} is missing: run scripts/setup-oip-clients.sh (make test does)")
    name, champ, other, _, rows = model
    d = tmp_path_factory.mktemp("oip-clients")
    cfg = {"url": launch.url(service), "hostport": f"{service.serve_host}:{service.serve_port}", "model": name,
           "champion": champ, "other_version": other, "rows": rows.tolist()}
    (d / "in.json").write_text(json.dumps(cfg))
    out = subprocess.run([str(CLIENTS_PY), str(REPO / "tests" / "integration" / "oip_clients.py"),
                          str(d / "in.json"), str(d / "out.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads((d / "out.json").read_text())


@pytest.fixture(scope="module")
def v1(service, model, pipeline):
    """`/v1/predict`'s answers for the same rows."""
    _, _, _, features, rows = model
    body = {"horizon": pipeline.horizon, "rows": [dict(zip(features, map(float, r))) for r in rows]}
    status, headers, b = call(service, "POST", "/v1/predict", json.dumps(body).encode(),
                              {"Content-Type": "application/json"})
    assert status == 200, b
    preds = json.loads(b)["predictions"]
    return {"prob_up": [p["prob_up"] for p in preds], "pred_return": [p["pred_return"] for p in preds],
            "version": headers["X-Model-Version"]}


def same(got: dict, want: dict):
    for k in ("prob_up", "pred_return"):
        assert len(got[k]) == len(want[k]) > 0
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-12, err_msg=k)


def test_triton_client_every_route(clients, model, v1):
    name, champ, other, features, rows = model
    t = clients["triton"]
    assert t["live"] is True and t["ready"] is True
    assert t["server"]["name"] == "tickcast" and "binary_tensor_data" in t["server"]["extensions"]
    assert t["model_ready"] is True and t["champion_ready"] is True
    assert t["other_ready"] is False and t["unknown_version_ready"] is False and t["unknown_model_ready"] is False
    for meta in (t["metadata"], t["champion_metadata"]):
        assert meta["name"] == name and meta["versions"] == [champ] == [v1["version"]]
        assert meta["parameters"]["feature_names"] == features
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, len(features)]}]
    # JSON, the client's binary defaults, binary in with JSON out, and the version segment: /v1's numbers.
    for how, got in t["infer"].items():
        same(got, v1)
        assert got["model_version"] == champ and got["id"] == "oip-1", how
    assert t["infer"]["defaults"]["binary"] == [True, True]
    assert t["infer"]["json"]["binary"] == [False, False] == t["infer"]["binary_in_json_out"]["binary"]


def test_triton_client_bad_requests_are_protocol_4xx(clients, model):
    name, champ, other, features, _ = model
    e = clients["triton"]["errors"]
    F = len(features)
    for case in ("wrong_width", "wrong_width_binary"):
        assert e[case]["status"] == 422 and f"[n, {F}]" in e[case]["message"], e[case]
    for case in ("wrong_datatype", "wrong_datatype_binary"):
        assert e[case]["status"] == 422 and "datatype" in e[case]["message"], e[case]
    assert e["unknown_model"]["status"] == 404 and "tickcast-h9999" in e["unknown_model"]["message"]
    assert e["unknown_model_metadata"]["status"] == 404 and "resnet" in e["unknown_model_metadata"]["message"]
    for case in ("unknown_version", "unknown_version_metadata"):
        assert e[case]["status"] == 404 and "unknown version '9999'" in e[case]["message"], e[case]
    for case in ("other_version", "other_version_metadata"):
        assert e[case]["status"] == 404, e[case]
        assert f"v{other} is registered but not served" in e[case]["message"] and f"v{champ}" in e[case]["message"]


def test_kserve_client_readiness_infer_and_errors(clients, model, v1):
    k = clients["kserve"]
    assert k["live"] is True and k["ready"] is True and k["model_ready"] is True and k["unknown_model_ready"] is False
    for how, got in k["infer"].items():
        same(got, v1)
        assert got["id"] == "oip-2", how
    for case, status, word in (("wrong_width", 422, "shape"), ("wrong_datatype", 422, "datatype"),
                               ("unknown_model", 404, "tickcast-h9999")):
        r = k["errors"][case]
        assert r["status"] == status and r["content_type"] == "application/json", r
        assert set(r["body"]) == {"error", "fields"} and word in r["body"]["error"], r
        assert isinstance(r["body"]["fields"], list) and r["body"]["fields"]


def test_curl_defaults(service, model, pipeline, v1):
    """curl -d sends a form content type: 415 naming application/json; curl --json works."""
    _, _, _, features, rows = model
    body = json.dumps({"horizon": pipeline.horizon, "rows": [dict(zip(features, map(float, rows[0])))]})
    url = launch.url(service) + "/v1/predict"

    def curl(*args):
        out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args, url], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        text, code = out.rsplit("\n", 1)
        return int(code), json.loads(text)

    code, got = curl("-d", body)
    assert code == 415 and "application/x-www-form-urlencoded" in got["error"] and "application/json" in got["error"]
    assert got["fields"] == ["Content-Type"]
    code, got = curl("--json", body)
    assert code == 200 and got["predictions"][0]["prob_up"] == pytest.approx(v1["prob_up"][0], rel=1e-6)
