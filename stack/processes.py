"""The child processes `up` starts, and where its own stderr goes."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tickcast.settings import Settings


def _die_with_parent() -> None:
    """Children get SIGTERM if `up` itself dies without cleaning up (kill -9): Linux prctl(PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: run_up's finally block still stops them
        pass


class Children:
    """The child processes `up` started: each in its own session, with its log under the data directory."""

    def __init__(self, s: Settings, log_dir: Path):
        self.s, self.log_dir = s, log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], nice: int = 0) -> subprocess.Popen:
        """Start `cmd` as child `name`; `nice` > 0 lowers its CPU priority (the retrainer's)."""
        def prepare() -> None:
            _die_with_parent()
            if nice:
                os.nice(nice)

        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.s.child_env(), start_new_session=True, preexec_fn=prepare)
        log.close()
        self.procs[name] = proc
        return proc

    def url(self, name: str, host_attr: str, port_attr: str) -> str:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            return f"not running (exit {proc.returncode}; see {self.log_dir / (name + '.log')})"
        host = getattr(self.s, host_attr)
        return f"http://{'[' + host + ']' if ':' in host else host}:{getattr(self.s, port_attr)}/"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT to the producer (it flushes), SIGTERM to the others; SIGKILL whatever outlives `timeout`."""
        for name, proc in self.procs.items():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT if name == "producer" else signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


class QuietStderr:
    """Send this process's stderr (fd 2: Spark's JVM, TensorFlow, MLflow and Python warnings) to a log
    file, and give it back on exit, so errors raised after the run still reach the terminal."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled, self.saved = path, enabled, None

    def __enter__(self):
        if self.enabled:
            sys.stderr.flush()
            self.saved = os.dup(2)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 2)
            os.close(fd)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            sys.stderr.flush()
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self.saved = None
