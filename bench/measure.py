"""The benchmarks' shared measuring helpers: a private world (settings, broker ports, lanes), CPU
meters, percentiles, streaming progress summaries, the machine's description and the report every
bench ends with (`<out>/<name>.json` plus the printed table)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from jobs import ingest
from tickcast import kafka_broker
from tickcast.engine.progress_json import recent_progress
from tickcast.settings import Settings
from tickcast.spark import session
from testkit.net import free_port


def private_settings(s: Settings, out: Path, prefix: str, lane: str, topic: str, **extra) -> tuple[Path, Settings]:
    """A bench's own world: `out` created, a temp data dir under `<data_dir>/bench/`, a broker on free ports."""
    Path(out).mkdir(parents=True, exist_ok=True)
    (s.data_dir / "bench").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=s.data_dir / "bench"))
    return root, dataclasses.replace(
        s, data_dir=root, lake_uri=str(root / lane / "delta"), checkpoint_uri=str(root / lane / "checkpoints"),
        mlflow_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",   # never the user's registry
        kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_controller_port=free_port(), topic=topic, **extra)


def run_header(run: "PrivateRun", ticks: int, targets: dict, method: str, *settings: str) -> dict:
    """The fields every bench report starts with: size, start time, targets, method and the settings that matter."""
    names = ("topic_partitions", "spark_master", "spark_driver_memory", "trigger_seconds", *settings, "kafka_heap")
    return {"ticks": ticks, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "targets": targets, "method": method,
            "settings": {n: getattr(run.bs, n) for n in names}, "broker_start_s": run.broker_start_s}


@dataclasses.dataclass
class PrivateRun:
    """A bench's broker (started), data folder and Spark session (started on demand), and their timings."""
    root: Path
    bs: Settings
    broker_pid: int
    broker_start_s: float
    spark: object = None
    spark_start_s: float | None = None

    def start_spark(self, app: str, r: dict):
        """Start the session; record its start-up time and the machine in the report `r`."""
        t0 = time.monotonic()
        self.spark = session(self.bs, app=app, extra={"spark.ui.enabled": "false"})
        self.spark.range(1).count()  # the first action's own start-up belongs to start-up, not to a measure
        r["spark_start_s"] = self.spark_start_s = round(time.monotonic() - t0, 2)
        r["machine"] = machine(self.spark)
        return self.spark


@contextlib.contextmanager
def private_run(s: Settings, out: Path, prefix: str, topic: str, **extra):
    """`private_settings` with its broker started; Spark, the broker and the data folder go away however it ends."""
    root, bs = private_settings(s, out, prefix, "main", topic, **extra)
    run = None
    try:
        t0 = time.monotonic()
        pid = kafka_broker.start(bs).pid
        run = PrivateRun(root, bs, pid, round(time.monotonic() - t0, 2))
        yield run
    finally:
        try:
            if run is not None and run.spark is not None:
                try:
                    run.spark.stop()
                except Exception as e:  # a failed stop must not keep the broker alive
                    print(f"stopping Spark: {e}", file=sys.stderr)
            kafka_broker.stop(bs)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def lane_settings(bs: Settings, root: Path, name: str, topic: str) -> Settings:
    """Settings with a topic, lake and checkpoints of their own on the bench broker."""
    return dataclasses.replace(bs, topic=topic, lake_uri=str(root / name / "delta"),
                               checkpoint_uri=str(root / name / "checkpoints"))


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (all its threads), from /proc; 0 when unknown."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuMeter:
    """CPU seconds used by this Python process, the broker and the Spark JVM over a span."""

    def __init__(self, broker_pid: int | None, jvm_pid: int | None = None):
        self.pids = {"python": os.getpid(), "broker": broker_pid, "spark_jvm": jvm_pid}

    def __enter__(self):
        self._t0 = time.monotonic()
        self._c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        return self

    def __exit__(self, *_):
        self.wall = time.monotonic() - self._t0
        self.cpu = {k: round(cpu_seconds(p) - self._c0[k], 2) for k, p in self.pids.items() if p}
        return False

    def cores(self) -> dict[str, float]:
        """Average cores busy per process over the span (2.0 = both cores of this machine)."""
        return {k: round(v / self.wall, 2) for k, v in self.cpu.items()} if self.wall else {}


def jvm_pid(spark) -> int | None:
    # pyspark starts the JVM through spark-submit, whose scripts `exec` java: same pid.
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    return getattr(proc, "pid", None)


def batch_summary(progress: list[dict]) -> dict:
    """Per micro-batch rows and durationMs (all phases), for the report's 'why' lines."""
    batches = [p for p in progress if (p.get("numInputRows") or 0) > 0]
    phases: dict[str, int] = {}
    for p in batches:
        for k, v in (p.get("durationMs") or {}).items():
            phases[k] = phases.get(k, 0) + int(v)
    return {
        "batches": len(batches),
        "rows_per_batch": [int(p["numInputRows"]) for p in batches][:50],
        "trigger_ms_per_batch": [int((p.get("durationMs") or {}).get("triggerExecution", 0)) for p in batches][:50],
        "duration_ms_total": phases,
    }


def await_query(q, timeout: float) -> None:
    if not q.awaitTermination(timeout):
        q.stop()
        raise RuntimeError(f"query {q.name} did not finish within {timeout:.0f}s")
    if q.exception() is not None:
        raise RuntimeError(f"query {q.name} failed: {q.exception()}")


def pct(values: list[float], p: float) -> float:
    """Percentile with linear interpolation (numpy's default), on a sorted copy."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def report(r: dict, out: Path, name: str, rows: list[tuple[str, str, str]], notes_title: str,
           notes: list[str], rule: int = 100) -> Path:
    """The shared tail of every bench: write `<out>/<name>.json` (r with its own path in `json`), then
    print the table (label, value, note per row) and the notes under their title. Returns the path."""
    path = Path(out) / f"{name}.json"
    r["json"] = str(path.resolve())
    path.write_text(json.dumps(r, indent=2, default=str) + "\n")
    w0 = max(len(x[0]) for x in rows)
    w1 = max((len(x[1]) for x in rows if x[2]), default=0)
    print()
    print(f"tickcast bench {name}")
    print("-" * rule)
    for label, val, note in rows:
        print(f"{label:<{w0}}  {val:<{w1}}  {note}".rstrip())
    print("-" * rule)
    print(notes_title)
    for line in notes:
        print(f"  {line}")
    print(f"\nwritten: {r['json']}")
    return path


def run_noop(spark, ls: Settings, name: str, transform=None) -> dict:
    """availableNow over the lane's topic with the production reader options into a noop sink."""
    df = ingest.read_topic(spark, ls)
    df = transform(df) if transform else df.select("value")
    t0 = time.monotonic()
    q = (df.writeStream.queryName(name).format("noop")
         .option("checkpointLocation", f"{ls.checkpoint_uri}/{name}")
         .trigger(availableNow=True).start())
    await_query(q, timeout=1800)
    wall = time.monotonic() - t0
    progress = recent_progress(q)
    rows = sum(int(p.get("numInputRows") or 0) for p in progress)
    return {"rows": rows, "seconds": round(wall, 2), "rows_per_s": round(rows / wall), **batch_summary(progress)}


def high_watermarks(s: Settings) -> dict[str, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "tickcast-bench-watermarks",
                  "enable.auto.commit": False, "log_level": 3})
    try:
        md = c.list_topics(s.topic, timeout=10).topics[s.topic]
        return {str(p): c.get_watermark_offsets(TopicPartition(s.topic, p), timeout=10)[1] for p in md.partitions}
    finally:
        c.close()


def machine(spark=None) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    import confluent_kafka

    return {"cpu_count": os.cpu_count(), "cpu_affinity": len(os.sched_getaffinity(0)), "cpu_model": model,
            "memory_gib": mem_gib, "python": platform.python_version(), "platform": platform.platform(),
            "spark": spark.version if spark is not None else None, "pyspark": ver("pyspark"),
            "delta_spark": ver("delta-spark"), "confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0]}
