"""`tickcast up | tee log`, then the pipe closes and a signal comes: every child `up` started stops.

Real processes: `up` starts its own broker (a data directory and ports of its own), the simulator,
the ingest stream in its Spark driver, the service and the dashboard.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.kafka


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_http(url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                assert r.status == 200
                return
        except OSError as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout:.0f} s: {e}") from None
            time.sleep(1)


def test_sigterm_with_a_closed_stdout_pipe_stops_every_child(base_settings, tmp_path):
    from tickcast import kafka_broker

    d = tmp_path / "data"
    s = dataclasses.replace(base_settings, data_dir=d, lake_uri=str(d / "delta"), checkpoint_uri=str(d / "cp"),
                            kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_controller_port=free_port(),
                            mlflow_uri=f"sqlite:///{d / 'mlflow' / 'mlflow.db'}", serve_port=free_port(),
                            dashboard_port=free_port(), producer_metrics_port=0)
    proc = subprocess.Popen([sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate", "--jobs", "ingest",
                             "--status-every", "1"], env=s.child_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    seen, lines = set(), []
    try:
        deadline = time.monotonic() + 240
        # Plain status lines (stdout is a pipe, not a terminal) once ingest has committed batches.
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            if " | ingest " in line and "bronze.ticks=" in line and "bronze.ticks=0" not in line:
                break
        assert any("bronze.ticks=" in x for x in lines), "".join(lines)[-3000:]
        assert any(x.startswith("service: http://127.0.0.1:") for x in lines), "".join(lines)
        assert any(x.startswith("dashboard: http://127.0.0.1:") for x in lines), "".join(lines)
        assert all(len(x) < 400 for x in lines)
        # The service and the dashboard `up` started answer on loopback.
        for url in (f"http://127.0.0.1:{s.serve_port}/health", f"http://127.0.0.1:{s.dashboard_port}/"):
            _wait_http(url, 90)
        seen = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        broker = kafka_broker._read_pid(s)
        assert broker and _alive(broker)
        seen.add(broker)
        assert len(seen) >= 5, seen           # producer, service, dashboard, Spark's JVM, the broker

        proc.stdout.close()                   # `tee` has gone: the next write meets a closed pipe
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:   # a failure above: take down everything `up` started, then `up`
            kids = psutil.Process(proc.pid).children(recursive=True)
            broker = kafka_broker._read_pid(s)
            for p in kids:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            os.killpg(proc.pid, signal.SIGKILL)
            if broker:
                try:
                    os.kill(broker, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [(p, psutil.Process(p).cmdline()[:4]) for p in seen if _alive(p)]
    for p, _ in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"children of `up` still running after it stopped: {left}"
    assert kafka_broker._read_pid(s) is None
