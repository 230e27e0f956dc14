"""`tickcast bench serve`: the prediction service under load, against `mlflow models serve` and LiteRT alone.

In a data directory of its own (`<data_dir>/bench/serve-*`, deleted at the end): a small lake and
champion (bench/_fixtures.py), then `tickcast serve` (gunicorn, 2 workers) is loaded for `seconds`
(20) per route from a separate process (wrk if installed, else serving.loadgen's processes):
one-row POST /v1/predict, GET /v1/predict/<symbol>, POST /v2/models/tickcast-h1/infer with the
default worker class, and the one-row POST with each of WORKER_CLASSES (the default is chosen by
this measurement). References in the same run: `mlflow models serve` of the same registered
version under the same load, and the LiteRT call alone in a loop. Prints a table and writes `<out>/serve.json`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench._fixtures import demo_lake
from serving import gunicorn_conf, launch, registry
from tickcast.settings import Settings
from testkit.net import free_port, wait_http

CONNECTIONS = 8          # as the serving baseline in docs/performance.md#serving-connections
THREADS = 2
# Closed-loop latency at saturation is mostly queueing (mean latency = connections / throughput), so
# the one-row POST is also run at each of these connection counts (one wrk thread: it needs < 0.2
# cores and a second one only competes with the server for the 2 cores): the latency target is read
# as "the most req/s with p99 <= 5 ms" over this sweep.
SWEEP = (1, 2, 4, 8, 16)
SWEEP_SECONDS = 10
P99_TARGET_MS = 5
# The one-row POST under each (gunicorn's GUNICORN_CMD_ARGS over serving/gunicorn_conf.py); the
# default class also serves the other routes. sync closes every connection; gthread keeps them alive.
WORKER_CLASSES = {"sync": "--worker-class sync", "gthread x1": "--worker-class gthread --threads 1",
                  "gthread x4": "--worker-class gthread --threads 4"}



def _cpu(pid: int) -> tuple[float, dict[int, float]]:
    """CPU seconds (user + system) of a server's process tree, and of each of its direct children
    (the gunicorn workers and the registry watcher), from one walk of the tree."""
    import psutil

    try:
        p = psutil.Process(pid)
        direct = {q.pid for q in p.children()}
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, {}
    total, per_child = 0.0, {}
    for q in procs:
        try:
            t = q.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
        if q.pid in direct:
            per_child[q.pid] = t.user + t.system
    return total, per_child


def _ms(v: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    x, unit = float(m.group(1)), m.group(2)
    return x / 1000 if unit == "us" else x * 1000 if unit == "s" else x


def _wrk(url: str, method: str, body: str | None, seconds: float, tmp: Path, connections: int = CONNECTIONS,
         threads: int = THREADS) -> dict:
    script = tmp / "wrk.lua"
    lines = [f'wrk.method = "{method}"', 'wrk.headers["Content-Type"] = "application/json"']
    if body is not None:
        lines.append("wrk.body = [==[" + body + "]==]")
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60).stdout
    lat = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"tool": "wrk", "requests": total, "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "errors": (int(non2xx.group(1)) if non2xx else 0),
            "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()))) if sock else {},
            "raw": out}


def _pyload(url: str, method: str, body: str | None, seconds: float, tmp: Path, connections: int = CONNECTIONS,
            threads: int = THREADS) -> dict:
    import numpy as np

    out = tmp / "load.json"
    subprocess.run([sys.executable, "-m", "serving.loadgen", "--url", url, *(["--body", body] if body else []),
                    "--seconds", str(seconds), "--procs", str(connections), "--out", str(out)],
                   check=True, timeout=seconds + 120)
    rows = json.loads(out.read_text())
    lat = np.array([r[1] for r in rows]) * 1000
    return {"tool": "serving.loadgen", "requests": len(rows), "req_per_s": len(rows) / seconds,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "errors": sum(1 for r in rows if not 200 <= r[2] < 300), "socket_errors": {}}


def load(url: str, method: str, body: str | None, seconds: float, server_pid: int, tmp: Path,
         connections: int = CONNECTIONS, threads: int = THREADS) -> dict:
    """Drive one route for `seconds` over `connections`; with the server tree's CPU (cores) over the run."""
    import resource

    (c0, k0), w0 = _cpu(server_pid), time.monotonic()
    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen = _wrk if shutil.which("wrk") else _pyload
    r = gen(url, method, body, seconds, tmp, connections, threads)
    r["connections"] = connections
    wall = time.monotonic() - w0
    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c1, k1 = _cpu(server_pid)
    r["server_cores"] = round((c1 - c0) / wall, 2)
    # Per child: keep-alive connections stay with the worker that accepted them, so an uneven
    # split of the load generator's connections shows here (one worker near 1 core, the other idle).
    r["cores_per_child"] = sorted((round((v - k0.get(p, 0.0)) / wall, 2) for p, v in k1.items()), reverse=True)
    r["load_generator_cores"] = round((ch1.ru_utime + ch1.ru_stime - ch0.ru_utime - ch0.ru_stime) / wall, 2)
    return r



def _stop(proc) -> None:
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def litert_loop(model, x, seconds: float = 3.0) -> dict:
    import numpy as np

    model.predict(x)
    lat, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        model.predict(x)
        lat.append(time.perf_counter() - t)
    a = np.array(lat) * 1e6
    return {"calls": len(a), "calls_per_s": round(len(a) / a.sum() * 1e6, 1),
            "p50_us": round(float(np.percentile(a, 50)), 2), "p99_us": round(float(np.percentile(a, 99)), 2)}


def run(settings: Settings, seconds: float | None, out: Path) -> dict:
    import numpy as np

    from tickcast import lake, model_io, tables  # deferred: heavy (imports mlflow)
    from bench.measure import machine, report
    from tickcast.litert import LiteModel  # deferred: heavy (imports numpy)

    seconds = float(seconds or 20)
    s = settings
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (s.data_dir / "bench").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="serve-", dir=s.data_dir / "bench"))
    procs = []
    try:
        t0 = time.monotonic()
        ls, rep = demo_lake(s, root)
        print(f"model {rep['model']} v{rep['version']} ({rep['alias']}) on simulated history in "
              f"{time.monotonic() - t0:.0f}s", flush=True)
        client = model_io.configure(ls)
        folder = model_io.materialize(client, rep["model"], rep["version"], registry.cache_dir(ls))
        lite = LiteModel.open(folder, rep["model"], rep["version"])
        feats = lite.features
        df = lake.read(tables.FEATURES, ls).to_pandas()
        df = df[df["feature_version"] == lite.meta["feature_version"]].sort_values("window_start")
        symbol = str(df["symbol"].iloc[-1])
        x = df[feats].to_numpy("float32")[-1:]
        row = dict(zip(feats, map(float, x[0])))
        bodies = {
            "POST /v1/predict (1 row)": ("POST", "/v1/predict", json.dumps({"horizon": 1, "rows": [row]})),
            "GET /v1/predict/<symbol>": ("GET", f"/v1/predict/{symbol}?horizon=1", None),
            "POST /v2/models/tickcast-h1/infer (1 row)": (
                "POST", "/v2/models/tickcast-h1/infer",
                json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, len(feats)],
                                        "data": x[0].tolist()}]})),
        }
        results: dict = {"seconds_per_route": seconds, "connections": CONNECTIONS,
                         "load_generator": "wrk" if shutil.which("wrk") else "serving.loadgen", "routes": {},
                         "sweep": []}
        tmp = root / "load"
        tmp.mkdir()
        default = gunicorn_conf.worker_class + (f" x{gunicorn_conf.threads}" if gunicorn_conf.worker_class == "gthread"
                                                else "")
        post_name = list(bodies)[0]
        for wclass, env_args in WORKER_CLASSES.items():     # every route with the default, the POST with each
            routes = list(bodies) if wclass == default else [post_name]
            ss = launch.with_port(ls, free_port(), workers=2)
            env = ss.child_env()
            env["GUNICORN_CMD_ARGS"] = env_args      # gunicorn's own override of its config
            proc = subprocess.Popen([launch.tickcast_exe(), "serve"], env=env, stdout=open(root / f"{wclass}.log", "ab"),
                                    stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(proc)
            launch.wait_ready(ss, proc, timeout=120)
            time.sleep(1.0)     # /ready answered by one worker: let the other finish booting (~0.4 s CPU)
            import psutil

            rss = [p.memory_info().rss / 2**20 for p in psutil.Process(proc.pid).children()
                   if "serving.registry" not in " ".join(p.cmdline())]
            for name in routes:
                method, path, body = bodies[name]
                r = load(launch.url(ss) + path, method, body, seconds, proc.pid, tmp)
                r.pop("raw", None)
                r["worker_rss_mib"] = [round(v) for v in rss]
                results["routes"][f"{name} [{wclass}]"] = r
                print(f"{name} [{wclass}]: {r['req_per_s']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
                      f"p99 {r['p99_ms']:.2f} ms, errors {r['errors']}, server {r['server_cores']} cores "
                      f"(per child {r['cores_per_child']})", flush=True)
            if wclass == default:
                method, path, body = bodies[post_name]
                for c in SWEEP:
                    r = load(launch.url(ss) + path, method, body, min(seconds, SWEEP_SECONDS), proc.pid, tmp,
                             connections=c, threads=1)
                    r.pop("raw", None)
                    results["sweep"].append(r)
                    print(f"{post_name} [{wclass}], {c} connections: {r['req_per_s']:,.0f} req/s, p50 "
                          f"{r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']}, per child {r['cores_per_child']}",
                          flush=True)
            _stop(proc)

        # Reference: mlflow models serve of the same version, same load.
        import mlflow

        port = free_port()
        env = ls.child_env()
        env["MLFLOW_TRACKING_URI"] = env["MLFLOW_REGISTRY_URI"] = ls.mlflow_uri
        # mlflow serve execs `uvicorn` from PATH: this environment's.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        mlf = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                                f"models:/{rep['model']}/{rep['version']}", "--env-manager", "local",
                                "-h", "127.0.0.1", "-p", str(port), "-w", "2"], env=env,
                               stdout=open(root / "mlflow.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(mlf)
        wait_http(f"http://127.0.0.1:{port}/ping", 180, mlf)
        mbody = json.dumps({"dataframe_split": {"columns": feats, "data": [x[0].tolist()]}})
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=mbody.encode(),
                                    headers={"Content-Type": "application/json"}), timeout=30) as r:
            mlflow_answer = json.loads(r.read())
        ref = load(f"http://127.0.0.1:{port}/invocations", "POST", mbody, seconds, mlf.pid, tmp)
        ref.pop("raw", None)
        ref["mlflow_version"] = mlflow.__version__
        results["mlflow_models_serve"] = ref
        print(f"mlflow models serve {mlflow.__version__}: {ref['req_per_s']:,.1f} req/s, p50 {ref['p50_ms']:.1f} ms, "
              f"p99 {ref['p99_ms']:.1f} ms, errors {ref['errors']}", flush=True)
        _stop(mlf)

        results["litert_alone"] = litert_loop(lite, x)
        p, r_ = lite.predict(x)
        results["same_answer_as_mlflow"] = bool(np.allclose(
            [mlflow_answer["predictions"][0]["prob_up"], mlflow_answer["predictions"][0]["pred_return"]],
            [p[0], r_[0]], rtol=1e-5))
        posts = {w: results["routes"][f"{post_name} [{w}]"] for w in WORKER_CLASSES}
        results["default_worker_class"] = default
        results["chosen_worker_class"] = max(posts, key=lambda w: posts[w]["req_per_s"])
        best = posts[results["chosen_worker_class"]]
        results["speedup_vs_mlflow"] = round(best["req_per_s"] / max(ref["req_per_s"], 1e-9), 1)
        within = [r for r in results["sweep"] if r["p99_ms"] <= P99_TARGET_MS and not r["errors"]]
        top = max(within, key=lambda r: r["req_per_s"], default=None)
        results["most_req_per_s_with_p99_within_target"] = (
            {k: top[k] for k in ("connections", "req_per_s", "p50_ms", "p99_ms")} if top else None)
        results["targets"] = {"one_row_post_req_per_s": 3000, "one_row_post_p99_ms": P99_TARGET_MS,
                              "speedup_vs_mlflow": 30}
        results["met"] = {"req_per_s": best["req_per_s"] >= 3000,
                          "req_per_s_with_p99": bool(top and top["req_per_s"] >= 3000),
                          "speedup": results["speedup_vs_mlflow"] >= 30}
        results["model"] = f"{rep['model']} v{rep['version']}"
        results["machine"] = machine()
        lit = results["litert_alone"]
        rows_out = [(f"{k}", f"{v['req_per_s']:,.0f} req/s",
                     f"p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms, errors {v['errors']}, "
                     f"server {v['server_cores']} cores, load gen {v['load_generator_cores']} cores")
                    for k, v in results["routes"].items()]
        rows_out += [(f"{post_name} [{default}], {r['connections']} connection(s), wrk -t1", f"{r['req_per_s']:,.0f} req/s",
                      f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']}, "
                      f"server {r['server_cores']} cores") for r in results["sweep"]]
        rows_out += [(f"mlflow models serve {mlflow.__version__} (ref)", f"{ref['req_per_s']:,.1f} req/s",
                      f"p50 {ref['p50_ms']:.1f} ms, p99 {ref['p99_ms']:.1f} ms, errors {ref['errors']}"),
                     ("LiteRT call alone (limit)", f"{lit['calls_per_s']:,.0f} calls/s",
                      f"p50 {lit['p50_us']} us, p99 {lit['p99_us']} us, one thread"),
                     ("one-row POST / mlflow serve", f"{results['speedup_vs_mlflow']:,.0f}x", "target >= 30x")]
        notes = [f"targets on 2 cores: >= 3,000 req/s with p99 <= 5 ms -> {'met' if all(results['met'].values()) else 'NOT met'}"
                 f" ({results['met']}); the most req/s with p99 <= {P99_TARGET_MS} ms over the connection sweep: "
                 f"{results['most_req_per_s_with_p99_within_target']}",
                 "past the connection count that saturates the workers, more connections add queueing, not "
                 "req/s (closed loop: mean latency = connections / req/s)",
                 f"worker class by this measurement: {results['chosen_worker_class']} (default in "
                 f"serving/gunicorn_conf.py: {default}; on a quiet machine, a different winner means change it)",
                 "the load generator shares the 2 cores with the server; the model is ~2% of a request "
                 "(LiteRT alone vs req/s): Flask/werkzeug request handling, gunicorn's HTTP handling and "
                 "connections (sync workers close every one) bound the numbers (docs/serving.md)"]
        report(results, out, "serve", rows_out, "notes:", notes)
        return results
    finally:
        for p in procs:
            _stop(p)
        shutil.rmtree(root, ignore_errors=True)

