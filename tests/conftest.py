"""Shared fixtures: one real Kafka broker and one Spark session per test run, on their own ports/dirs."""
from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from testkit.lakes import own_lake
from testkit.net import free_port  # noqa: F401  (re-exported: tests import it from here)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "binance"


def pytest_addoption(parser):
    parser.addoption("--chaos-seed", type=int, default=24,
                     help="seed of tests/integration/test_chaos.py's data and fault schedule (printed by the test)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the real Binance data lives beside the checkout in ../shared")
    return SHARED


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory):
    from tickcast.settings import load

    d = tmp_path_factory.mktemp("tickcast")
    return load({
        "TICKCAST_DATA_DIR": str(d),
        "TICKCAST_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "TICKCAST_KAFKA_CONTROLLER_PORT": str(free_port()),
        "TICKCAST_SPARK_DRIVER_MEMORY": "2g",
        # `up` in tests starts the service and dashboard: never on a user's 8000/8050.
        "TICKCAST_SERVE_PORT": str(free_port()),
        "TICKCAST_DASHBOARD_PORT": str(free_port()),
        "TICKCAST_METRICS_PORT": str(free_port()),
    })


@pytest.fixture(scope="session")
def broker(base_settings):
    from tickcast import kafka_broker

    kafka_broker.start(base_settings)
    yield base_settings
    kafka_broker.stop(base_settings)


@pytest.fixture(scope="session")
def spark(base_settings):
    from tickcast.spark import session

    sp = session(base_settings, app="tickcast-tests", extra={"spark.ui.enabled": "false"})
    yield sp
    sp.stop()


@pytest.fixture
def lane(base_settings, broker, tmp_path):
    """Settings with a topic, lake and checkpoints of this test's own (the broker is shared)."""
    from tickcast import kafka_broker

    s = dataclasses.replace(base_settings, topic=f"t-{uuid.uuid4().hex[:10]}",
                            lake_uri=str(tmp_path / "delta"), checkpoint_uri=str(tmp_path / "checkpoints"))
    kafka_broker.ensure_topic(s)
    return s


@pytest.fixture
def own_broker(base_settings, tmp_path):
    """Like `lane`, on a broker of this test's own (data directory and ports): for tests that stop
    the broker, so that the shared one never stops and no other test depends on their order."""
    from tickcast import kafka_broker

    d = tmp_path / "own"
    s = dataclasses.replace(base_settings, data_dir=d, kafka_bootstrap=f"127.0.0.1:{free_port()}",
                            kafka_controller_port=free_port(), topic=f"t-{uuid.uuid4().hex[:10]}",
                            lake_uri=str(d / "delta"), checkpoint_uri=str(d / "checkpoints"))
    kafka_broker.start(s)
    try:
        kafka_broker.ensure_topic(s)
        yield s
    finally:
        kafka_broker.stop(s)


@pytest.fixture
def lake_lane(base_settings, tmp_path):
    return own_lake(base_settings, tmp_path)
