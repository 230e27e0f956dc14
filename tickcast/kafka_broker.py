"""The local single-node Apache Kafka broker (KRaft), run from the jars `scripts/setup.sh` fetched.

Hand-written rather than a library: no Python package runs a real broker; this starts Apache's
own `kafka.Kafka` main class with a small heap and keeps its state under the data directory.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tickcast.settings import Settings

RESOURCES = Path(__file__).resolve().parent / "resources"


class BrokerError(RuntimeError):
    """The broker cannot be started, reached or stopped; the message names the cause."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    reachable: bool
    pid: int | None
    bootstrap: str
    topics: dict[str, int]  # topic -> partitions
    log: Path

    def describe(self) -> str:
        state = "running" if self.running else "stopped"
        if self.running and not self.reachable:
            state = "running but not answering"
        lines = [f"kafka: {state} (pid {self.pid or '-'}) at {self.bootstrap}", f"log: {self.log}"]
        for t, n in sorted(self.topics.items()):
            lines.append(f"topic {t}: {n} partitions")
        return "\n".join(lines)


def _dir(s: Settings) -> Path:
    return s.data_dir / "kafka"


def _pid_file(s: Settings) -> Path:
    return _dir(s) / "broker.pid"


def _log_dir(s: Settings) -> Path:
    return _dir(s) / "logs"


def _classpath(s: Settings) -> str:
    jars = s.jars_dir / "kafka"
    if not any(jars.glob("kafka_*.jar")):
        raise BrokerError(f"Kafka broker jars not found in {jars} (TICKCAST_JARS_DIR): run scripts/setup.sh first")
    return str(jars / "*")


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise BrokerError("java not found on PATH: the broker needs a Java 17+ runtime")
    return java


def _read_pid(s: Settings) -> int | None:
    try:
        pid = int(_pid_file(s).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    # A recycled pid would not be a java process running our config.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"kafka.Kafka" not in cmdline:
            return None
    except FileNotFoundError:
        return None
    return pid


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            return e.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a Kafka broker answers a metadata request at `bootstrap`."""
    from confluent_kafka.admin import AdminClient

    # log_level 0: a refused connection is the answer here, not something to print.
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000), "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
        return True
    except Exception:  # KafkaException for every transport failure
        return False


def require_reachable(s: Settings, timeout: float = 5.0) -> None:
    """Fail with a clear message when no broker answers at the configured bootstrap."""
    if not reachable(s.kafka_bootstrap, timeout):
        raise BrokerError(
            f"no Kafka broker answers at {s.kafka_bootstrap} (TICKCAST_KAFKA_BOOTSTRAP): "
            "start the local one with `tickcast kafka start`"
        )


def _write_config(s: Settings) -> Path:
    d = _dir(s)
    host, port = s.kafka_host, s.kafka_port
    cfg = d / "server.properties"
    cfg.write_text(
        "\n".join(
            [
                "# Written by tickcast on every start; edit the TICKCAST_ settings instead.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={d / 'data'}",
                f"num.partitions={s.topic_partitions}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                f"log.retention.ms={int(s.topic_retention_hours * 3600 * 1000)}",
                "",
            ]
        )
    )
    return cfg


def _format(s: Settings, cfg: Path) -> None:
    if (_dir(s) / "data" / "meta.properties").exists():
        return
    import base64

    # Like Kafka's own Uuid.randomUuid: no id starting with '-', which a command line takes for an option.
    cid = "-"
    while cid.startswith("-"):
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    out = subprocess.run(
        [_java(), "-Xmx256m", "-cp", _classpath(s), "kafka.tools.StorageTool", "format",
         f"--cluster-id={cid}", "-c", str(cfg), "--standalone"],
        capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        # `--standalone` is refused when controller.quorum.voters is static; format without it.
        out = subprocess.run(
            [_java(), "-Xmx256m", "-cp", _classpath(s), "kafka.tools.StorageTool", "format",
             f"--cluster-id={cid}", "-c", str(cfg)],
            capture_output=True, text=True, timeout=120,
        )
    if out.returncode != 0:
        raise BrokerError(f"formatting the Kafka storage in {_dir(s) / 'data'} failed: {out.stdout}{out.stderr}".strip())


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return "(no log)"


def start(s: Settings, timeout: float = 90.0) -> BrokerStatus:
    """Start the broker (formatting its storage on first start), wait until it answers, create the topic."""
    if _read_pid(s) is not None:
        if reachable(s.kafka_bootstrap):
            ensure_topic(s)
            return status(s)
    for name, port in (("TICKCAST_KAFKA_BOOTSTRAP", s.kafka_port), ("TICKCAST_KAFKA_CONTROLLER_PORT", s.kafka_controller_port)):
        if port_in_use(s.kafka_host, port):
            raise BrokerError(
                f"port {port} on {s.kafka_host} is already in use ({name}); another broker or program holds it. "
                "Stop it, or choose other ports with TICKCAST_KAFKA_BOOTSTRAP / TICKCAST_KAFKA_CONTROLLER_PORT."
            )
    _log_dir(s).mkdir(parents=True, exist_ok=True)
    cfg = _write_config(s)
    _format(s, cfg)
    stdout = _log_dir(s) / "stdout.log"
    with open(stdout, "ab") as out:
        proc = subprocess.Popen(
            [_java(), f"-Xmx{s.kafka_heap}", f"-Xms{s.kafka_heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-Djava.awt.headless=true", f"-Dkafka.logs.dir={_log_dir(s)}",
             f"-Dlog4j2.configurationFile={RESOURCES / 'kafka-log4j2.properties'}",
             "-cp", _classpath(s), "kafka.Kafka", str(cfg)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    _pid_file(s).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pid_file(s).unlink(missing_ok=True)
            raise BrokerError(
                f"the Kafka broker exited at start (code {proc.returncode}); last log lines:\n"
                f"{_tail(stdout)}\n{_tail(_log_dir(s) / 'server.log')}"
            )
        if reachable(s.kafka_bootstrap, timeout=2.0):
            ensure_topic(s)
            return status(s)
        time.sleep(0.5)
    stop(s)
    raise BrokerError(f"the Kafka broker did not answer within {timeout:.0f}s; see {_log_dir(s) / 'server.log'}")


def ensure_topic(s: Settings) -> None:
    """Create the raw trade topic with the configured partitions and retention (no-op if it exists)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    if s.topic in admin.list_topics(timeout=10).topics:
        return
    retention = str(int(s.topic_retention_hours * 3600 * 1000))
    fut = admin.create_topics(
        [NewTopic(s.topic, num_partitions=s.topic_partitions, replication_factor=1,
                  config={"retention.ms": retention, "max.message.bytes": "1048576"})]
    )[s.topic]
    try:
        fut.result(timeout=30)
    except Exception as e:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise BrokerError(f"creating topic {s.topic!r} failed: {e}") from e


def stop(s: Settings, timeout: float = 30.0) -> bool:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after `timeout`). Returns whether one was running."""
    pid = _read_pid(s)
    if pid is None:
        _pid_file(s).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    _pid_file(s).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(s: Settings) -> BrokerStatus:
    pid = _read_pid(s)
    topics: dict[str, int] = {}
    ok = reachable(s.kafka_bootstrap, timeout=2.0)
    if ok:
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": s.kafka_bootstrap}).list_topics(timeout=5)
        topics = {name: len(t.partitions) for name, t in md.topics.items() if not name.startswith("__")}
    return BrokerStatus(running=pid is not None, reachable=ok, pid=pid, bootstrap=s.kafka_bootstrap,
                        topics=topics, log=_log_dir(s) / "server.log")
