"""`tickcast serve` for real: gunicorn with 2 workers on 127.0.0.1 over the shared pipeline's tables and a
copy of its MLflow registry (this module moves the champion alias). Light workers (no TensorFlow),
/metrics summed over workers equal to the traffic sent, and a hot reload under load."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from serving import launch
from testkit.lakes import fork
from testkit.net import free_port
from testkit.promtool import check_metrics
from testkit.wait import until
from tickcast import lake, model_io, tables

pytestmark = pytest.mark.spark

RELOAD_SECONDS = 1.0


@pytest.fixture(scope="module")
def service(pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("gunicorn")
    # A fork of the registry (new versions' artefacts go under `root`); the pipeline's tables, read only.
    own = fork(pipeline.settings, root, tables=())
    s = launch.with_port(dataclasses.replace(pipeline.settings, data_dir=root, mlflow_uri=own.mlflow_uri,
                                             serve_reload_seconds=RELOAD_SECONDS, serve_admin_token="tok"),
                         free_port(), workers=2)
    proc = launch.start(s, log=root / "serve.log")
    try:
        launch.wait_ready(s, proc, timeout=120)
        yield s, proc, root
    finally:
        launch.stop(proc)
        print((root / "serve.log").read_text()[-3000:])


@pytest.fixture(scope="module")
def champion(service, pipeline):
    s = service[0]
    return model_io.load(s, model_io.model_name(pipeline.horizon), model_io.CHAMPION)


@pytest.fixture(scope="module")
def row(service, champion):
    df = lake.read(tables.FEATURES, service[0]).to_pandas()
    df = df[df["feature_version"] == champion.feature_version]
    return dict(zip(champion.features, map(float, df[champion.features].to_numpy(float)[-1])))


def call(s, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(launch.url(s) + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metric_samples(s) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = call(s, "GET", "/metrics")
    assert status == 200
    check_metrics(body)                 # the exposition passes promtool's lint, summed over workers
    return [x for f in text_string_to_metric_families(body.decode()) for x in f.samples]


def count(samples, name, **labels) -> float:
    return sum(x.value for x in samples if x.name == name and all(x.labels.get(k) == v for k, v in labels.items()))


def workers(proc):
    import psutil

    kids = psutil.Process(proc.pid).children()
    return [k for k in kids if "serving.registry" not in " ".join(k.cmdline())]


def test_two_light_workers_without_tensorflow(service):
    s, proc, root = service
    ws = workers(proc)
    assert len(ws) == 2
    for w in ws:
        maps = Path(f"/proc/{w.pid}/maps").read_text()
        # No TensorFlow, and no Delta reader: the registry watcher reads silver.features and
        # publishes the newest rows (serving/feed.py); pyarrow, delta-rs and pandas cost ~200 MiB.
        for lib in ("libtensorflow", "keras", "libarrow", "_deltalake", "pandas/_libs"):
            assert lib not in maps, (w.pid, lib)
        assert w.memory_info().rss <= 150 * 2**20, f"worker RSS {w.memory_info().rss / 2**20:.0f} MiB"
    # A worker's boot, as gunicorn does it (serving.wsgi:app()), in a fresh interpreter with the same settings.
    # Boot cost as CPU seconds (wall time on a loaded 2-core CI machine measures the other jobs too).
    # RSS now, not ru_maxrss: Linux carries the forking parent's peak (this test process, with Spark
    # and TensorFlow) across exec into the child's ru_maxrss.
    code = ("import json, psutil, sys, time; t = time.perf_counter(); c0 = time.process_time(); "
            "from serving.wsgi import app; a = app(); boot = time.process_time() - c0; wall = time.perf_counter() - t; "
            "c = a.test_client(); assert c.get('/ready').status_code == 200; "
            "print(json.dumps({'seconds': boot, 'wall_seconds': wall, 'modules': sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('tensorflow', 'keras', 'mlflow', 'torch', 'pyarrow', 'deltalake', 'pandas')), "
            "'rss_mib': psutil.Process().memory_info().rss / 2**20}))")
    env = s.child_env()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(root / "boot-metrics")
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    out = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True, timeout=60).stdout.strip().splitlines()[-1])
    print("worker boot", out)
    assert out["modules"] == []
    assert out["seconds"] <= 2.0 and out["rss_mib"] <= 150


def test_connections_opened_at_once_spread_over_the_workers(service):
    """Keep-alive connections stay with the worker that accepted them: with one shared socket a pool
    opened at once often landed on one worker (the other idle). Each worker listens on a socket of
    its own (serving/balance.py), so 16 connections opened together reach both (all on one:
    probability ~2 x 0.5^16)."""
    import http.client

    s, proc, _ = service
    ws = workers(proc)
    for w in ws:   # each worker's own listener is in the port's SO_REUSEPORT group, beside the shared one
        assert sum(1 for c in w.net_connections("tcp") if c.status == "LISTEN"
                   and c.laddr.port == s.serve_port) == 2, w.pid
    conns = [http.client.HTTPConnection(s.serve_host, s.serve_port, timeout=10) for _ in range(16)]
    try:
        for c in conns:
            c.connect()
        for c in conns:
            c.request("GET", "/health")
            r = c.getresponse()
            assert r.status == 200 and r.getheader("Connection", "").lower() != "close"
            r.read()
        held = {w.pid: sum(1 for c in w.net_connections("tcp") if c.status == "ESTABLISHED"
                           and c.laddr.port == s.serve_port) for w in ws}
        print("connections per worker", held)
        assert sum(held.values()) == 16
        assert all(n >= 1 for n in held.values()), held
    finally:
        for c in conns:
            c.close()


def test_metrics_sum_the_traffic_over_workers(service, champion, pipeline, row):
    s, proc, root = service
    H, sym = pipeline.horizon, pipeline.symbols[0]
    before = metric_samples(s)
    sent = {("/v1/predict", "POST", "200"): 37, ("/v1/predict/<symbol>", "GET", "200"): 23,
            ("/v2/models/<model_name>/infer", "POST", "200"): 11, ("/v1/predict", "POST", "422"): 9,
            ("<unmatched>", "GET", "404"): 5}
    X = np.array([[row[f] for f in champion.features]], dtype="float32")
    want_p, want_r = champion.predictor()(X)
    for _ in range(37):
        st, h, b = call(s, "POST", "/v1/predict", {"horizon": H, "rows": [row]})
        assert st == 200 and h["X-Model-Version"] == champion.version
        got = json.loads(b)["predictions"][0]
        assert got["prob_up"] == pytest.approx(want_p[0], rel=1e-5)
        assert got["pred_return"] == pytest.approx(want_r[0], rel=1e-5, abs=1e-9)
    # The newest row of the symbol, as the watcher's feed hands it to the workers: equal to Keras on it.
    df = lake.read(tables.FEATURES, s).to_pandas()
    newest = df[(df["feature_version"] == champion.feature_version) & (df["symbol"] == sym)] \
        .sort_values("window_start").iloc[-1]
    lp, lr = champion.predictor()(newest[champion.features].to_numpy("float32")[None, :])
    for _ in range(23):
        st, h, b = call(s, "GET", f"/v1/predict/{sym}?horizon={H}")
        got = json.loads(b)
        assert st == 200 and got["window_start"] == newest["window_start"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert got["prob_up"] == pytest.approx(lp[0], rel=1e-5)
        assert got["pred_return"] == pytest.approx(lr[0], rel=1e-5, abs=1e-9)
        assert got["staleness_seconds"] == pytest.approx(time.time() - newest["window_start"].timestamp() - 60, abs=5)
    v2 = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, X.shape[1]], "data": X[0].tolist()}]}
    for _ in range(11):
        assert call(s, "POST", f"/v2/models/{champion.name}/infer", v2)[0] == 200
    for _ in range(9):
        assert call(s, "POST", "/v1/predict", {"horizon": H, "rows": [dict(row, bogus=1.0)]})[0] == 422
    for _ in range(5):
        assert call(s, "GET", "/no/such/route")[0] == 404
    after = metric_samples(s)
    name = "tickcast_http_request_duration_seconds_count"
    for (route, method, status), n in sent.items():
        labels = dict(route=route, method=method, status=status)
        assert count(after, name, **labels) - count(before, name, **labels) == n, labels
    rows = count(after, "tickcast_predictions_total", version=champion.version) - \
        count(before, "tickcast_predictions_total", version=champion.version)
    assert rows == 37 + 23 + 11
    # Both workers answered some of it: each wrote its own multiprocess file.
    pids = {p.name.split("_")[-1] for p in (root / "serve" / str(s.serve_port) / "metrics").glob("histogram_*.db")}
    assert len(pids) >= 2


def test_hot_reload_under_load_fails_nothing(service, champion, pipeline, row, tmp_path, request):
    import mlflow
    import pandas as pd

    s, proc, root = service
    client = model_io.configure(s)

    def restore():      # the module's other tests see the champion they started with
        model_io.set_alias(client, champion.name, model_io.CHAMPION, champion.version, "hot reload test done")
        call(s, "POST", "/v1/models/reload", headers={"Authorization": "Bearer tok"})
    request.addfinalizer(restore)
    with mlflow.start_run(run_name="serving hot reload test"):      # registered, not yet champion
        _, v2 = model_io.log_model(champion.model, champion.meta, champion.reference,
                                   pd.DataFrame([row], columns=champion.features))
    body = json.dumps({"horizon": pipeline.horizon, "rows": [row]})
    out = tmp_path / "load.json"
    load = subprocess.Popen([sys.executable, "-m", "serving.loadgen", "--url", launch.url(s) + "/v1/predict",
                             "--body", body, "--seconds", "10", "--procs", "2", "--out", str(out)],
                            env=s.child_env())
    # The alias moves once the load has been answered for 2.5 s (the service's own count says so).
    before = count(metric_samples(s), "tickcast_predictions_total", version=champion.version)
    t_load = until(lambda: count(metric_samples(s), "tickcast_predictions_total", version=champion.version) > before
                   and time.time(), 30, "the load answered", proc=load)
    until(lambda: time.time() > t_load + 2.5, 5, "2.5 s of load")
    model_io.set_alias(client, champion.name, model_io.CHAMPION, v2, "hot reload test")
    t_switch = time.time()
    assert load.wait(60) == 0
    rows = json.loads(out.read_text())
    failed = [r for r in rows if r[2] != 200]
    assert not failed, failed[:5]
    versions = [(t, v) for t, _, _, v in rows]
    assert {v for _, v in versions} == {champion.version, v2}
    first_new = min(t for t, v in versions if v == v2)
    last_old = max(t for t, v in versions if v == champion.version)
    late_old = [t for t, v in versions if v == champion.version and t > t_switch + RELOAD_SECONDS + 1.5]
    print(f"{len(rows)} requests over {rows[-1][0] - rows[0][0]:.1f} s; v{v2} first answered "
          f"{first_new - t_switch:+.2f} s after the alias moved, v{champion.version} last {last_old - t_switch:+.2f} s")
    assert rows[0][0] < t_switch - 2 and rows[-1][0] > t_switch + RELOAD_SECONDS + 2   # load before and after
    assert not late_old, f"old version still answered {len(late_old)} times after the reload period"
    samples = metric_samples(s)
    assert count(samples, "tickcast_predictions_total", version=champion.version) > 0
    assert count(samples, "tickcast_predictions_total", version=v2) > 0
    # The admin reload answers with the new version at once.
    st, _, b = call(s, "POST", "/v1/models/reload", headers={"Authorization": "Bearer tok"})
    assert st == 200 and json.loads(b)["serving"] == {str(pipeline.horizon): v2}
    assert call(s, "POST", "/v1/models/reload")[0] == 401
