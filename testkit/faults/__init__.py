"""Fault hooks for the chaos tests, installed by the tests, never read by the product.

A process with a hook installed SIGKILLs its own process group at one aimed write point:
- `after-commit`: a foreachBatch sink has returned (its Delta commit is made), Spark's commit log
  has not recorded the batch yet;
- `mid-merge`: 0.2 s into a Delta MERGE (`DeltaMergeBuilder.execute`), only while it still runs
  (`kill_window`: the message then says "inside the operation"; a MERGE that returned first is
  not killed, and the next one is tried);
- `mid-append`: a delta-rs append has written its data file and not committed it (the file is
  left in the table's folder, named by no commit, as a kill inside `write_deltalake` leaves it);
- `after-bars-commit` / `after-features-commit`: a delta-rs append to silver.bars_1m / silver.features
  has committed, and nothing after it in the batch has run (the hot path's next commit);
- `mid-register`: a training run has registered its first model version and not the others
  (only this process is killed: a `tickcast retrain` run shares its parent's process group).

In this process: `install(point)`. In a child (a `tickcast job` driver): `child_env(env, point)`
puts `site/` on the child's PYTHONPATH; its `sitecustomize` installs the hook at start-up. The
hooks wrap the engines' public entry points as their modules are imported, so the product holds
no trace of them.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import signal
import sys
import threading
from pathlib import Path

POINTS = ("after-commit", "mid-merge", "mid-append", "after-bars-commit", "after-features-commit", "mid-register")
# An after-<table>-commit point -> the table's folder under the lake root (`tickcast.tables.Table.path`).
AFTER_TABLE = {"after-bars-commit": "silver/bars_1m", "after-features-commit": "silver/features"}
ENV = "TESTKIT_KILL_AT"           # read by site/sitecustomize.py in the child, never by the product
SITE = Path(__file__).with_name("site")


def child_env(env: dict[str, str], point: str) -> dict[str, str]:
    """`env` for a child process that kills itself at `point` ("" for none)."""
    env = dict(env)
    env.pop(ENV, None)
    if point:
        if point not in POINTS:
            raise ValueError(f"kill point: one of {', '.join(POINTS)}, got {point!r}")
        env[ENV] = point
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), env.get("PYTHONPATH", "")) if p)
    return env


def message(point: str) -> str:
    """What a process prints as it kills itself at `point` (the tests look for it in its log)."""
    return f"{ENV}={point}: killing process group"


INSIDE = "inside the operation"   # a `kill_window` kill's message ends so: the block had not returned


def kill(point: str, where: str = "") -> None:
    print(f"{message(point)} {os.getpgrp()}{where}", file=sys.stderr, flush=True)
    os.killpg(os.getpgrp(), signal.SIGKILL)


@contextlib.contextmanager
def kill_window(point: str, after_seconds: float):
    """SIGKILL this process's group `after_seconds` into the block, only while the block still runs
    (a JVM operation such as a MERGE): the message says so; a block that ended first is not killed."""
    lock, done = threading.Lock(), threading.Event()

    def die():
        with lock:
            if not done.is_set():
                kill(point, f" {INSIDE}")

    timer = threading.Timer(after_seconds, die)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            done.set()
        timer.cancel()


def _after_commit(mod) -> None:
    cls = mod.DataStreamWriter
    original = cls.foreachBatch

    def foreach_batch(self, func):
        def sink(batch, batch_id):
            func(batch, batch_id)
            kill("after-commit")
        return original(self, sink)

    cls.foreachBatch = foreach_batch


def _mid_merge(mod) -> None:
    cls = mod.DeltaMergeBuilder
    original = cls.execute

    def execute(self, *a, **k):
        with kill_window("mid-merge", 0.2):
            return original(self, *a, **k)

    cls.execute = execute


def _mid_append(mod) -> None:
    original = mod.write_deltalake

    def write_deltalake(table_or_uri, data, *a, mode="error", **k):
        if mode == "append" and hasattr(table_or_uri, "table_uri"):
            import uuid

            import pyarrow.parquet as pq

            root = table_or_uri.table_uri
            root = root[len("file://"):] if root.startswith("file://") else root
            pq.write_table(data, f"{root}/part-00000-{uuid.uuid4()}-c000.snappy.parquet")
            kill("mid-append")
        return original(table_or_uri, data, *a, mode=mode, **k)

    mod.write_deltalake = write_deltalake


def _after_table_commit(point: str):
    def patch(mod) -> None:
        original = mod.write_deltalake

        def write_deltalake(table_or_uri, *a, **k):
            out = original(table_or_uri, *a, **k)
            uri = getattr(table_or_uri, "table_uri", str(table_or_uri)).rstrip("/")
            if uri.endswith("/" + AFTER_TABLE[point]):
                kill(point)
            return out

        mod.write_deltalake = write_deltalake

    return patch


def _mid_register(mod) -> None:
    original = mod.log_model

    def log_model(*a, **k):
        out = original(*a, **k)
        print(f"{message('mid-register')} (this process only)", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return out

    mod.log_model = log_model


# point -> (module whose import the hook waits for, the patch)
HOOKS = {
    "after-commit": ("pyspark.sql.streaming.readwriter", _after_commit),
    "mid-merge": ("delta.tables", _mid_merge),
    "mid-append": ("deltalake", _mid_append),
    **{point: ("deltalake", _after_table_commit(point)) for point in AFTER_TABLE},
    "mid-register": ("tickcast.model_io", _mid_register),
}


class _OnImport(importlib.abc.MetaPathFinder):
    """Runs `patch(module)` right after `name` is first imported."""

    def __init__(self, name: str, patch):
        self.name, self.patch = name, patch

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        run, patch = spec.loader.exec_module, self.patch

        def exec_module(module):
            run(module)
            patch(module)
            sys.meta_path.remove(self)

        spec.loader.exec_module = exec_module
        return spec


def install(point: str) -> None:
    """Kill this process's group at `point`: patched now if its module is loaded, else on import."""
    if point not in HOOKS:
        raise ValueError(f"kill point: one of {', '.join(POINTS)}, got {point!r}")
    name, patch = HOOKS[point]
    if name in sys.modules:
        patch(sys.modules[name])
    else:
        sys.meta_path.insert(0, _OnImport(name, patch))
