"""The CLI as users run it: broker lifecycle, clear failures for bad settings and a down broker."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port

TICKCAST = [sys.executable, "-m", "tickcast.cli"]


def run(args, env, timeout=180):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def env_for(settings, **over):
    env = settings.child_env()
    env.update({f"TICKCAST_{k}": str(v) for k, v in over.items()})
    return env


def test_bad_setting_fails_at_start_naming_it(base_settings):
    for args in (TICKCAST + ["job", "ingest"], [sys.executable, str(REPO / "jobs" / "main.py"), "--job", "ingest"],
                 TICKCAST + ["produce", "--source", "simulate", "--count", "1"]):
        r = run(args, env_for(base_settings, TRIGGER_SECONDS="soon"))
        assert r.returncode != 0 and "TICKCAST_TRIGGER_SECONDS" in r.stderr, r.stderr[-500:]


def test_broker_down_gives_a_clear_message(base_settings):
    env = env_for(base_settings, KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    for args in (TICKCAST + ["job", "ingest"], TICKCAST + ["produce", "--source", "simulate", "--count", "1"]):
        r = run(args, env)
        assert r.returncode != 0 and "no Kafka broker answers" in r.stderr, r.stderr[-500:]


def test_kafka_start_status_stop_and_port_in_use(tmp_path, base_settings):
    port, cport = free_port(), free_port()
    env = env_for(base_settings, DATA_DIR=tmp_path, KAFKA_BOOTSTRAP=f"127.0.0.1:{port}", KAFKA_CONTROLLER_PORT=cport,
                  TOPIC_PARTITIONS=3, JARS_DIR=base_settings.jars_dir)
    try:
        r = run(TICKCAST + ["kafka", "start"], env)
        assert r.returncode == 0, r.stderr
        assert "topic ticks: 3 partitions" in r.stdout and (tmp_path / "kafka" / "data" / "meta.properties").exists()
        r = run(TICKCAST + ["kafka", "status"], env)
        assert r.returncode == 0 and "running" in r.stdout
        # A second broker wanting the same ports is refused with the cause named.
        other = env_for(base_settings, DATA_DIR=tmp_path / "other", KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
                        KAFKA_CONTROLLER_PORT=free_port(), JARS_DIR=base_settings.jars_dir)
        r = run(TICKCAST + ["kafka", "start"], other)
        assert r.returncode != 0 and f"port {port}" in r.stderr and "already in use" in r.stderr
    finally:
        r = run(TICKCAST + ["kafka", "stop"], env)
    assert "stopped" in r.stdout
    assert run(TICKCAST + ["kafka", "status"], env).returncode == 1


def test_port_held_by_another_program(tmp_path, base_settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = env_for(base_settings, DATA_DIR=tmp_path, KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
                      KAFKA_CONTROLLER_PORT=free_port())
        r = run(TICKCAST + ["kafka", "start"], env)
    assert r.returncode != 0 and "already in use" in r.stderr and "TICKCAST_KAFKA_BOOTSTRAP" in r.stderr


@pytest.mark.kafka
def test_simulator_publishes_acknowledged_synthetic_trades(lane):
    import json

    from confluent_kafka import Consumer, TopicPartition

    r = run(TICKCAST + ["produce", "--source", "simulate", "--count", "2000", "--speed", "max", "--seed", "7",
                        "--symbols", "BTCUSDT"], lane.child_env())
    assert r.returncode == 0, r.stderr
    assert "sent 2000, failed 0" in r.stdout
    c = Consumer({"bootstrap.servers": lane.kafka_bootstrap, "group.id": "t", "enable.auto.commit": False})
    parts = c.list_topics(lane.topic, timeout=10).topics[lane.topic].partitions
    c.assign([TopicPartition(lane.topic, p, 0) for p in parts])
    msgs = []
    for _ in range(200):
        msgs += [m for m in c.consume(500, timeout=1.0) if m.error() is None]
        if len(msgs) >= 2000:
            break
    c.close()
    assert len(msgs) == 2000
    for m in msgs[:50]:
        ev = json.loads(m.value())
        assert ev["e"] == "trade" and ev["s"] == "BTCUSDT-SIM" and m.key() == b"BTCUSDT-SIM"
        assert dict(m.headers()) == {"tickcast-source": b"simulate"}
