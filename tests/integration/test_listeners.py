"""Nothing listens beyond loopback by default: every listening socket of a running `tickcast up`.

Real processes: `up --source simulate` with its own broker, the simulator, the ingest stream in a
Spark driver with its UI on, the service and the dashboard. The listening sockets of its whole
process tree (and of the broker it started) must all be on 127.0.0.1 or ::1.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.kafka


def _loopback(ip: str) -> bool:
    """127.0.0.1 or ::1, also as a JVM's IPv4-mapped IPv6 socket (::ffff:127.0.0.1); never 0.0.0.0 or ::."""
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return a.is_loopback


def _listening(pids: set[int]) -> list[tuple[int, str, int, list[str]]]:
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            try:
                cmd = psutil.Process(c.pid).cmdline()[:3]
            except psutil.NoSuchProcess:
                cmd = []
            out.append((c.pid, c.laddr.ip, c.laddr.port, cmd))
    return out


def test_every_listener_of_a_running_up_is_on_loopback(base_settings, tmp_path):
    from tickcast import kafka_broker

    d = tmp_path / "data"
    s = dataclasses.replace(base_settings, data_dir=d, lake_uri=str(d / "delta"), checkpoint_uri=str(d / "cp"),
                            kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_controller_port=free_port(),
                            mlflow_uri=f"sqlite:///{d / 'mlflow' / 'mlflow.db'}", serve_port=free_port(),
                            dashboard_port=free_port(), producer_metrics_port=free_port(), metrics_port=free_port())
    env = s.child_env()
    env.pop("SPARK_LOCAL_IP", None)          # what a user's shell has: nothing
    proc = subprocess.Popen([sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate", "--jobs", "ingest",
                             "--status-every", "1"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            if " | ingest " in line and "bronze.ticks=" in line and "bronze.ticks=0" not in line:
                break
        assert any("bronze.ticks=" in x for x in lines), "".join(lines)[-3000:]
        time.sleep(2)       # the service's and dashboard's workers are up by the first ingest commit
        pids = {proc.pid} | {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        broker = kafka_broker._read_pid(s)
        assert broker
        pids.add(broker)
        socks = _listening(pids)
        ports = {port for _, _, port, _ in socks}
        # The ones that must be there: broker, its controller, service, dashboard, the stack's /metrics, the Spark UI.
        assert {s.kafka_port, s.kafka_controller_port, s.serve_port, s.dashboard_port, s.metrics_port} <= ports, socks
        assert any(4040 <= port < 4140 for port in ports), socks
        wide = [x for x in socks if not _loopback(x[1])]
        assert not wide, f"listening beyond loopback: {wide}"
        print(f"listeners of `up` ({len(socks)}): " + ", ".join(f"{ip}:{port}" for _, ip, port, _ in socks))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        b = kafka_broker._read_pid(s)
        if b:
            kafka_broker.stop(s)


def test_the_loopback_check_refuses_wildcards():
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("::ffff:127.0.0.1")
    assert not any(map(_loopback, ("0.0.0.0", "::", "::ffff:0.0.0.0", "192.168.1.5", "fe80::1")))


def test_the_spark_ui_has_no_kill_links_and_binds_loopback(base_settings):
    from tickcast.spark import conf

    c = conf(base_settings)
    assert c["spark.ui.killEnabled"] == "false"
    assert c["spark.driver.bindAddress"] == "127.0.0.1"
