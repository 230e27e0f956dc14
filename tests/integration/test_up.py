"""`tickcast up` end to end, one run shared by every check: from nothing to live predictions and
their outcomes, the stack's Prometheus metrics, nothing listening beyond loopback, `up | tee` whose pipe closes before a SIGTERM
stops every child, and a second `up` that resumes and stops on Ctrl-C.

Real everything: `up` as a user runs it (a subprocess with the simulator, stdout a pipe, no
SPARK_LOCAL_IP in its environment) with its own broker (a data directory and ports of its own),
its bootstrap training into a fresh MLflow store, Spark with its UI, Delta, the service and the
dashboard. The module's fixture runs the first `up` once and records what it saw; the tests below
check that record.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.conftest import REPO
from tests.integration.test_listeners import listening, loopback
from testkit.net import answers, free_port
from testkit.promtool import check_metrics
from testkit.wait import until
from tickcast import data_loss, lake, metrics, schemas, tables
from tickcast.timeunits import MINUTE_MS

# The first test waits for the whole shared run (bootstrap training included): minutes on a loaded machine.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(2400)]


def rows(t, s) -> int:
    """Rows of `t`; 0 only while the table does not exist yet (a read error fails the test)."""
    return len(lake.read(t, s, columns=[t.schema.names[0]])) if lake.exists(t, s) else 0


def scrape(s) -> tuple[bytes, dict[tuple, float]]:
    """The stack's /metrics: the text and its samples, read by prometheus_client's own parser."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10) as r:
        text = r.read()
    return text, {(x.name, tuple(sorted(x.labels.items()))): x.value
                  for f in text_string_to_metric_families(text.decode()) for x in f.samples}


def by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name}


def newest_minute_of_commit(path, at: float) -> tuple[float, float]:
    """(commit time, newest window start + 60 s) of the Delta commit made within 1 s of `at`, from
    the table's log: commitInfo.timestamp and the added files' statistics (max window_start)."""
    best = None
    for f in sorted((Path(path) / "_delta_log").glob("*.json")):
        ts, ends = None, []
        for line in f.read_text().splitlines():
            a = json.loads(line)
            if "commitInfo" in a:
                ts = a["commitInfo"]["timestamp"] / 1000.0
            elif "add" in a:
                st = json.loads(a["add"].get("stats") or "{}")
                v = (a["add"].get("partitionValues") or {}).get("window_start") or st.get("maxValues", {}).get(
                    "window_start")
                if v is not None:
                    w = pd.Timestamp(v)
                    ends.append((w if w.tzinfo else w.tz_localize("UTC")).timestamp() + MINUTE_MS / 1000)
        if ts is not None and ends and abs(ts - at) <= 1.0 and (best is None or abs(ts - at) < abs(best[0] - at)):
            best = (ts, max(ends))
    assert best is not None, f"no commit of {path} within 1 s of {at}"
    return best


def unique(t, s, key) -> int:
    df = lake.read(t, s, columns=list(key)).to_pandas()
    assert not df.duplicated(list(key)).any(), f"{t.name} has a duplicate key"
    return len(df)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Up:
    """`tickcast up --source simulate` as a child in a session of its own; its stdout is a pipe read
    without blocking (`pump`) into `text`, so that a wait never leaves `up` stuck on a full pipe."""

    def __init__(self, s, env: dict, log: Path):
        self.s, self.log, self.text = s, log, ""
        self.proc = subprocess.Popen([sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate",
                                      "--rate", "50", "--status-every", "1"], env=env, cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def pump(self) -> str:
        out = self.proc.stdout
        if out is None or out.closed:
            return self.text
        while select.select([out], [], [], 0)[0]:
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                break
            self.text += chunk.decode(errors="replace")
            with open(self.log, "a") as f:
                f.write(chunk.decode(errors="replace"))
        return self.text

    def wait(self, cond, timeout: float, what: str):
        return until(lambda: (self.pump(), cond())[1], timeout, what, proc=self.proc, interval=1.0,
                     detail=lambda: self.pump()[-3000:])

    def kill_all(self) -> None:
        """After a failure: take down everything `up` started, then `up`."""
        from tickcast import kafka_broker

        if self.proc.poll() is None:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            os.killpg(self.proc.pid, signal.SIGKILL)
        b = kafka_broker._read_pid(self.s)
        if b:
            try:
                os.kill(b, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclasses.dataclass
class FirstRun:
    s: object                        # the settings `up` ran with
    log: Path
    text: str                        # everything `up` printed
    champion: str                    # the bootstrap champion's version (the quick model)
    served: dict                     # the service's first answer of GET /v1/predict/<symbol>?horizon=1
    live_from_ms: int                # the first minute no bootstrap history can hold: only the live path's
    live_outcomes: int               # outcomes of live predictions seen while `up` ran
    metrics_text: bytes              # the stack's /metrics once every query's counters had risen
    metrics_early: dict              # its samples at the first prediction
    metrics_late: dict               # its samples once every query's counters had risen past the early ones
    sockets: list                    # (pid, ip, port, cmdline) listening in `up`'s tree and its broker
    answered: dict                   # URL -> it answered 200 while `up` ran
    seen: set                        # pids of `up`'s children (recursive) and its broker
    code: int                        # `up`'s exit code after its stdout closed and a SIGTERM
    left: list                       # of `seen`, those still running 30 s after `up` exited
    broker_pid_after: int | None     # the broker's pid file after `up` exited


def _live_outcomes(s, live_from_ms: int) -> int:
    if not lake.exists(tables.OUTCOMES, s):
        return 0
    t = lake.read(tables.OUTCOMES, s, columns=["symbol", "window_start"])
    ms = lake.to_ms(t["window_start"])
    return int(((ms >= live_from_ms) & t.to_pandas()["symbol"].str.endswith("-SIMSIG").to_numpy()).sum())


def _served(s) -> dict | None:
    """The service's answer for the first simulated symbol at horizon 1, once it is a 200."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.serve_port}/v1/predict/BTCUSDT-SIMSIG?horizon=1",
                                    timeout=5) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError):      # 503 before a champion is loaded, or not listening yet
        return None


def champions(s) -> list[str]:
    """Every version that got `champion` through the gate, oldest first (ops.model_events)."""
    from tickcast import model_events

    ev = model_events.read(s, 1)
    return list(ev[ev["event"] == "promotion"]["model_version"][::-1])


@pytest.fixture(scope="module")
def first_up(base_settings, tmp_path_factory) -> FirstRun:
    from tickcast import kafka_broker

    d = tmp_path_factory.mktemp("up") / "data"
    s = dataclasses.replace(base_settings, data_dir=d, lake_uri=str(d / "delta"), checkpoint_uri=str(d / "cp"),
                            kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_controller_port=free_port(),
                            mlflow_uri=f"sqlite:///{d / 'mlflow' / 'mlflow.db'}", serve_port=free_port(),
                            dashboard_port=free_port(), producer_metrics_port=free_port(), metrics_port=free_port(),
                            horizons=(1,))
    env = s.child_env()
    env.pop("SPARK_LOCAL_IP", None)          # what a user's shell has: nothing
    log = d.parent / "up.log"
    up = Up(s, env, log)
    try:
        # Bootstrap (simulated history with the planted signal, features, training in a child).
        champ = up.wait(lambda: re.search(r"tickcast-h1 v(\d+) -> champion", up.text), 900, "a bootstrap champion")
        # The first served prediction: the latest-row route answers from the bootstrap's newest
        # feature row as soon as the service has loaded the quick model (bench first-prediction times it).
        served = up.wait(lambda: _served(s), 300, "a prediction served by the latest-row route")
        # The bootstrap's history ends at the minute it started in, before the champion: a minute
        # after the champion's can only come from the live simulator through the streams.
        live_from = (int(time.time() * 1000) // MINUTE_MS + 1) * MINUTE_MS
        up.wait(lambda: rows(tables.PREDICTIONS, s) > 0, 600, "a prediction")
        _, early = scrape(s)
        # The live path: a live minute's bar, its features, its prediction, then its outcome once the
        # next minute closed.
        up.wait(lambda: _live_outcomes(s, live_from) > 0, 600, "an outcome of a live prediction")
        n_live = _live_outcomes(s, live_from)

        # The stack's /metrics as ticks flow: every query's counters rise past their early reading.
        def risen():
            late = scrape(s)[1]
            return all(by_label(late, n, "query").get(q, 0) > by_label(early, n, "query").get(q, 0)
                       for q in ("ingest", "outcomes")    # up's queries: the hot path (named ingest) and outcomes
                       for n in ("tickcast_stream_input_rows_total", "tickcast_stream_batches_total"))

        up.wait(risen, 240, "every query's counters rising on /metrics")
        metrics_text, late = scrape(s)
        # While everything runs: the listeners of `up`'s whole tree and of its broker.
        urls = (f"http://127.0.0.1:{s.serve_port}/health", f"http://127.0.0.1:{s.dashboard_port}/")
        answered = {u: up.wait(lambda u=u: answers(u), 90, f"an answer from {u}") for u in urls}
        seen = {p.pid for p in psutil.Process(up.proc.pid).children(recursive=True)}
        broker = kafka_broker._read_pid(s)
        assert broker and alive(broker), "no broker of `up`'s own"
        seen.add(broker)
        sockets = listening(seen | {up.proc.pid})

        up.pump()
        up.proc.stdout.close()            # `tee` has gone: the next write meets a closed pipe
        os.kill(up.proc.pid, signal.SIGTERM)
        code = up.proc.wait(120)
    except BaseException:
        up.kill_all()
        raise
    deadline = time.monotonic() + 30
    while any(alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [(p, psutil.Process(p).cmdline()[:4]) for p in seen if alive(p)]
    for p, _ in left:
        os.kill(p, signal.SIGKILL)
    return FirstRun(s, log, up.text, champ.group(1), served, live_from, n_live, metrics_text, early, late, sockets, answered,
                    seen, code, left, kafka_broker._read_pid(s))


def _promoted_by_the_retrainer(s) -> set[str]:
    """Versions the retrainer promoted during the run (ops.model_events)."""
    from tickcast import model_events

    ev = model_events.read(s, 1)
    return set(ev.loc[(ev["event"] == "promotion") & (ev["source"] == "retrainer"), "model_version"].astype(str))


def test_up_from_nothing_to_live_predictions_and_outcomes(first_up):
    r, s = first_up, first_up.s
    assert "producer: simulate" in r.text and "models: training horizon(s) 1" in r.text
    assert r.live_outcomes > 0
    for t, key in ((tables.TICKS, schemas.TICKS_KEY), (tables.BARS, schemas.BARS_KEY),
                   (tables.PREDICTIONS, schemas.PREDICTIONS_KEY), (tables.OUTCOMES, schemas.OUTCOMES_KEY)):
        assert unique(t, s, key) > 0, t.name
    # Predictions of live minutes only (none of the bootstrap's history can be this late), by the
    # bootstrap's champion, for every simulated symbol.
    pt = lake.read(tables.PREDICTIONS, s)
    preds = pt.to_pandas().assign(window_ms=lake.to_ms(pt["window_start"]))
    live = preds[preds["window_ms"] >= r.live_from_ms]
    assert len(live) and live["symbol"].str.endswith("-SIMSIG").all(), live["symbol"].unique()
    # The quick bootstrap model serves the first live minutes; the first full retrain (started at
    # once, at low priority) may promote another version through the gate while `up` runs.
    first_live = live.sort_values("window_ms").iloc[0]
    # On a quiet machine that retrain can be promoted before the first live minute closes.
    promoted = {r.champion} | _promoted_by_the_retrainer(s)
    assert first_live["model_version"] in promoted and set(live["horizon"]) == {1}, (first_live, promoted)
    assert set(live["model_version"]) <= set(champions(s)), (set(live["model_version"]), champions(s))
    assert live["prob_up"].between(0, 1).all()
    bars = lake.read(tables.BARS, s, columns=["symbol", "window_start"])
    live_bars = set(zip(bars["symbol"].to_pylist(), lake.to_ms(bars["window_start"])))
    assert set(zip(live["symbol"], live["window_ms"])) <= live_bars, "a live prediction without its bar"
    # Every query's executed batches are in the progress history, rows included (not only idle triggers).
    prog = lake.read(tables.STREAM_PROGRESS, s, columns=["query_name", "run_id", "batch_id", "num_input_rows"]
                     ).to_pandas()
    assert not prog.duplicated(["run_id", "batch_id"]).any()
    with_rows = prog[prog["num_input_rows"] > 0].groupby("query_name").size()
    # The hot path is the ingest query; the bootstrap's available-now features run (before the live
    # streams) writes progress too. No bars or predict query ran.
    assert set(with_rows.index) - {"features"} == {"ingest", "outcomes"}, with_rows


def test_the_stacks_metrics_agree_with_the_lake(first_up):
    r, s = first_up, first_up.s
    late = r.metrics_late
    assert f"metrics: http://127.0.0.1:{s.metrics_port}/metrics" in r.text
    check_metrics(r.metrics_text)
    # Freshness per stage equals its Delta commit: the commit's time minus its newest minute's end.
    commits = by_label(late, "tickcast_stage_commit_timestamp_seconds", "stage")
    fresh = by_label(late, "tickcast_stage_freshness_seconds", "stage")
    assert set(fresh) == {"bars", "features", "predictions"}, fresh
    for stage, table in (("bars", tables.BARS), ("features", tables.FEATURES), ("predictions", tables.PREDICTIONS)):
        ts, end = newest_minute_of_commit(table.path(s), commits[stage])
        assert abs(commits[stage] - ts) <= 1.0 and abs(fresh[stage] - (ts - end)) <= 1.0, (stage, commits, fresh, ts, end)
    # The lost-offsets gauge is ops.lost_offsets, partition by partition (0 where nothing was lost).
    lost = {(dict(k[1])["topic"], int(dict(k[1])["partition"])): v for k, v in late.items()
            if k[0] == "tickcast_lost_offsets"}
    table_lost = data_loss.lost_offsets(s)
    assert {k for k in lost if k[0] == s.topic} == {(s.topic, p) for p in range(s.topic_partitions)}, lost
    assert all(lost[k] == table_lost.get(k, 0) for k in lost), (lost, table_lost)
    served = by_label(late, "tickcast_model_version", "horizon")
    assert set(served) == {"1"} and str(int(served["1"])) in champions(s), (served, champions(s))
    # Every metric is there but those that may not be measured yet (lag at no input rate, live scores
    # before enough outcomes).
    maybe = {"tickcast_stream_kafka_lag_seconds", "tickcast_live_hit_ratio", "tickcast_live_brier_score",
             "tickcast_live_outcomes"}
    assert set(metrics.NAMES) - maybe <= {k[0] for k in late}, set(metrics.NAMES) - {k[0] for k in late}


def test_every_listener_of_a_running_up_is_on_loopback(first_up):
    r, s = first_up, first_up.s
    ports = {port for _, _, port, _ in r.sockets}
    # The ones that must be there: broker, its controller, service, dashboard, the stack's /metrics, the Spark UI.
    assert {s.kafka_port, s.kafka_controller_port, s.serve_port, s.dashboard_port, s.metrics_port} <= ports, r.sockets
    assert any(4040 <= port < 4140 for port in ports), r.sockets
    wide = [x for x in r.sockets if not loopback(x[1])]
    assert not wide, f"listening beyond loopback: {wide}"
    assert all(r.answered.values()), r.answered
    print(f"listeners of `up` ({len(r.sockets)}): " + ", ".join(f"{ip}:{port}" for _, ip, port, _ in r.sockets))


def test_sigterm_with_a_closed_stdout_pipe_stops_every_child(first_up):
    r = first_up
    lines = r.text.splitlines()
    status = [x for x in lines if " | ingest " in x]
    assert any("bronze.ticks=" in x and "bronze.ticks=0" not in x for x in status), r.text[-3000:]
    assert all(len(x) < 400 and "\x1b" not in x for x in status)     # plain lines: stdout is no terminal
    assert any(x.startswith("service: http://127.0.0.1:") for x in lines), r.text[-3000:]
    assert any(x.startswith("dashboard: http://127.0.0.1:") for x in lines), r.text[-3000:]
    assert len(r.seen) >= 5, r.seen          # producer, service, dashboard, Spark's JVM, the broker
    assert r.code == 0
    assert not r.left, f"children of `up` still running after it stopped: {r.left}"
    assert r.broker_pid_after is None


def test_a_second_up_resumes_without_training_and_stops_on_ctrl_c(first_up):
    from tickcast import kafka_broker

    r, s = first_up, first_up.s
    ticks1 = unique(tables.TICKS, s, schemas.TICKS_KEY)
    up = Up(s, s.child_env(), r.log)
    try:
        up.wait(lambda: rows(tables.TICKS, s) > ticks1 + 500, 300, "new ticks")
        os.killpg(up.proc.pid, signal.SIGINT)          # a terminal's Ctrl-C reaches the whole group
        code = up.proc.wait(120)
    except BaseException:
        up.kill_all()
        raise
    second = up.pump()
    assert code == 0, second[-3000:]
    assert "models: training" not in second and "stopping: producer, streams" in second
    pid = int(re.search(r"producer: simulate \(pid (\d+)", second).group(1))
    assert not alive(pid)            # the producer was stopped with the pipeline
    assert kafka_broker._read_pid(s) is None
    assert unique(tables.TICKS, s, schemas.TICKS_KEY) > ticks1 + 500
    unique(tables.BARS, s, schemas.BARS_KEY)
    unique(tables.PREDICTIONS, s, schemas.PREDICTIONS_KEY)
    assert rows(tables.QUARANTINE, s) == 0


def test_the_quick_model_serves_first_the_panel_says_why_and_the_full_retrain_follows(first_up):
    from tickcast import model_io, model_events

    r, s = first_up, first_up.s
    # The bootstrap trained the linear family alone, through the gate, and said so.
    assert "the quick bootstrap model (linear;" in r.text
    assert f"tickcast-h1 v{r.champion} -> champion (quick bootstrap model, linear; the gate: " in r.text
    client = model_io.configure(s)
    tags = client.get_model_version("tickcast-h1", r.champion).tags
    assert tags["family"] == "linear" and tags["candidates"] == "linear" and tags["gate"] == "promoted"
    boot = model_events.read(s, 1)
    boot = boot[boot["model_version"] == r.champion].iloc[-1]
    assert boot["event"] == "promotion" and json.loads(boot["numbers"])["candidates"] == ["linear"]
    # The service served that model from the bootstrap's newest feature row.
    assert r.served["model_version"] == r.champion and r.served["horizon"] == 1
    assert r.served["symbol"] == "BTCUSDT-SIMSIG" and 0 <= r.served["prob_up"] <= 1
    # The retrainer took up every family at once instead of a TICKCAST_RETRAIN_EVERY later.
    log = (s.data_dir / "logs" / "retrainer.log").read_text()
    assert "retrain: tickcast-h1 on " in log, log[-2000:]
    # KNOWN DEFECT (issue 33, open): with the hot path as up's live path, the status lines of which model
    # serves and of catching up were missing from up's output in a quiet run (not yet understood). The
    # checks stay, marked as an expected failure, until it is fixed.
    lines = r.text.splitlines()
    flat = " ".join(r.text.split())          # the panel wraps long lines at words
    quick = (f"model: h1 serving v{r.champion} (linear); the quick bootstrap model (linear only, fitted in "
             "seconds so predictions start at once): mlp, conv follow in the first retrain, through the same gate; "
             "the gate passed it: ")
    later = [v for v in _promoted_by_the_retrainer(s) if f"model: h1 serving v{v} " in flat]
    catching = [i for i, x in enumerate(lines) if x.startswith("catching up: waiting for the first live minute's")]
    caught = [i for i, x in enumerate(lines) if x.startswith("caught up: ")]
    if not ((quick in flat or later) and catching and len(caught) == 1 and caught[0] > catching[-1]):
        pytest.xfail("the panel's model and catching-up lines under the hot path (issue 33)")
