"""`tickcast bench progress`: what reading streaming progress costs the driver, each way (ADR 0006).

One tiny stream (rate source, 1-second trigger like ingest, a no-op foreachBatch) runs in rounds;
each round it runs once per way of reading its progress, for `seconds` each, and the CPU seconds of
the driver's Python process and of its JVM are counted over the run:

- `none`: nobody reads progress (the reference the others are compared with, same run);
- `json-poll`: what `jobs.progress` does, `_jsq.lastProgress().json()` every 0.5 s (the runner's poll);
- `public-poll`: pyspark's public `StreamingQuery.lastProgress` every 0.5 s;
- `listener`: pyspark's public `StreamingQueryListener`, each progress event taken as JSON.

Then each read alone (`reads` calls, wall and CPU time per call). Prints a table and writes
bench-results/progress.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from tickcast.settings import Settings
from tickcast.spark import session

WAYS = ("none", "json-poll", "public-poll", "listener")
POLL_S = 0.5


def _cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def jvm_pid(spark) -> int:
    """The driver JVM's pid (PySpark starts it as spark-submit, which execs java)."""
    import psutil

    pid = spark.sparkContext._gateway.proc.pid        # bench only: no public handle on the JVM process
    kids = [p for p in psutil.Process(pid).children(recursive=True) if "java" in p.name()]
    return kids[0].pid if kids else pid


def _listener_class():
    from pyspark.sql.streaming import StreamingQueryListener

    class Collect(StreamingQueryListener):
        """Keeps each progress event as a dict (what ProgressRecorder would record)."""

        def __init__(self):
            self.events: list[dict] = []

        def onQueryStarted(self, event):
            pass

        def onQueryProgress(self, event):
            self.events.append(json.loads(event.progress.json))

        def onQueryIdle(self, event):
            pass

        def onQueryTerminated(self, event):
            pass

    return Collect


def _run_way(spark, way: str, seconds: float, root: Path, jvm: int) -> dict:
    from tickcast.engine.progress_json import last_progress

    batches = []
    stream = (spark.readStream.format("rate").option("rowsPerSecond", 5).load()
              .writeStream.foreachBatch(lambda df, bid: batches.append(bid))
              .option("checkpointLocation", str(root / f"cp-{way}-{time.monotonic_ns()}"))
              .trigger(processingTime="1 second"))
    listener = None
    if way == "listener":
        listener = _listener_class()()
        spark.streams.addListener(listener)
    q = stream.start()
    try:
        while not batches:             # past the query's start-up
            time.sleep(0.1)
        reads = 0
        py0, jvm0, t0 = _cpu(os.getpid()), _cpu(jvm), time.monotonic()
        n0 = len(batches)
        while time.monotonic() - t0 < seconds:
            time.sleep(POLL_S)
            if way == "json-poll":
                last_progress(q)
                reads += 1
            elif way == "public-poll":
                q.lastProgress
                reads += 1
        dt = time.monotonic() - t0
        py, jv = _cpu(os.getpid()) - py0, _cpu(jvm) - jvm0
        n = len(batches) - n0
        if listener is not None:
            reads = len(listener.events)
    finally:
        q.stop()
        if listener is not None:
            spark.streams.removeListener(listener)
    return {"way": way, "seconds": dt, "batches": n, "reads": reads, "python_cpu_s": py, "jvm_cpu_s": jv}


def _per_read(spark, root: Path, reads: int, jvm: int) -> dict:
    """Each poll read alone, `reads` times on a query that has progress: seconds per call."""
    from tickcast.engine.progress_json import last_progress

    q = (spark.readStream.format("rate").option("rowsPerSecond", 5).load()
         .writeStream.foreachBatch(lambda df, bid: None)
         .option("checkpointLocation", str(root / "cp-reads")).trigger(processingTime="1 second").start())
    try:
        while last_progress(q) is None:
            time.sleep(0.2)
        out = {}
        for name, fn in (("json-poll", lambda: last_progress(q)), ("public-poll", lambda: q.lastProgress)):
            fn()
            py0, jvm0, t0 = _cpu(os.getpid()), _cpu(jvm), time.perf_counter()
            for _ in range(reads):
                fn()
            out[name] = {"wall_ms": (time.perf_counter() - t0) / reads * 1000,
                         "python_cpu_ms": (_cpu(os.getpid()) - py0) / reads * 1000,
                         "jvm_cpu_ms": (_cpu(jvm) - jvm0) / reads * 1000}
        return out
    finally:
        q.stop()


def progress_bench(s: Settings, seconds: float, rounds: int, reads: int, out: Path) -> dict:
    from bench.measure import machine, report

    out.mkdir(parents=True, exist_ok=True)
    (s.data_dir / "bench").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="progress-", dir=s.data_dir / "bench"))
    try:
        ls = dataclasses.replace(s, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "checkpoints"))
        spark = session(ls, app="tickcast-bench-progress", extra={"spark.ui.enabled": "false"})
        spark.sparkContext.setLogLevel("ERROR")
        jvm = jvm_pid(spark)
        _run_way(spark, "none", seconds / 2, root, jvm)          # warm-up (JIT, first queries), not counted
        runs = []
        for r in range(rounds):
            for way in (WAYS if r % 2 == 0 else WAYS[::-1]):      # alternate the order against drift
                runs.append(_run_way(spark, way, seconds, root, jvm) | {"round": r})
                print(json.dumps(runs[-1]), flush=True)
        per_read = _per_read(spark, root, reads, jvm)
        ways = {}
        for way in WAYS:
            rs = [x for x in runs if x["way"] == way]
            secs = sum(x["seconds"] for x in rs)
            ways[way] = {"cores_python": sum(x["python_cpu_s"] for x in rs) / secs,
                         "cores_jvm": sum(x["jvm_cpu_s"] for x in rs) / secs,
                         "batches_per_s": sum(x["batches"] for x in rs) / secs,
                         "reads_per_s": sum(x["reads"] for x in rs) / secs}
        ref = ways["none"]
        for w in ways.values():
            w["extra_cores"] = w["cores_python"] + w["cores_jvm"] - ref["cores_python"] - ref["cores_jvm"]
            w["extra_cpu_ms_per_batch"] = w["extra_cores"] / w["batches_per_s"] * 1000 if w["batches_per_s"] else None
        r = {"seconds_per_run": seconds, "rounds": rounds, "poll_every_s": POLL_S, "ways": ways, "per_read": per_read,
             "runs": runs, "load_average": os.getloadavg(), "machine": machine(spark)}
        rows = [(w, f"{v['extra_cores']:+.4f} cores",
                 f"python {v['cores_python']:.4f} + jvm {v['cores_jvm']:.4f}; {v['batches_per_s']:.2f} batches/s, "
                 f"{v['reads_per_s']:.2f} reads/s" + ("" if w == "none" else
                                                       f"; {v['extra_cpu_ms_per_batch']:+.1f} ms CPU per batch"))
                for w, v in ways.items()]
        rows += [(f"one {w} read", f"{v['wall_ms']:.2f} ms wall",
                  f"python {v['python_cpu_ms']:.2f} ms + jvm {v['jvm_cpu_ms']:.2f} ms CPU") for w, v in per_read.items()]
        report(r, out, "progress", rows, "notes:",
               ["extra cores: CPU of the driver (Python + JVM) above `none`, the reference run in the same rounds",
                "the listener is called once per progress event; the polls run every 0.5 s whatever the batches",
                f"load average during the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine)"])
        spark.stop()
        return r
    finally:
        shutil.rmtree(root, ignore_errors=True)
