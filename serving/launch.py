"""Start `tickcast serve` as a child process and wait until it is ready (tests, the benchmark, `up`)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tickcast.settings import Settings


def tickcast_exe() -> str:
    return str(Path(sys.executable).parent / "tickcast")


def start(s: Settings, log: Path | None = None) -> subprocess.Popen:
    """`tickcast serve` with these settings (host, port and workers included), in its own session."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([tickcast_exe(), "serve"], env=s.child_env(), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if log:
            out.close()


def url(s: Settings) -> str:
    return f"http://{s.serve_host}:{s.serve_port}"


def wait_ready(s: Settings, proc: subprocess.Popen | None = None, timeout: float = 90.0) -> dict:
    """Poll /ready until 200; raise with the last reason if it does not come."""
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"tickcast serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url(s) + "/ready", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            last = e.read().decode(errors="replace")
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise TimeoutError(f"tickcast serve not ready after {timeout:.0f} s: {last}")


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM to the service's process group (gunicorn, workers, registry watcher); SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def with_port(s: Settings, port: int, workers: int = 2, **changes) -> Settings:
    return dataclasses.replace(s, serve_host="127.0.0.1", serve_port=port, serve_workers=workers, **changes)
