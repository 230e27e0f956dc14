"""gunicorn configuration of `tickcast serve` (also the Kubernetes container's `-c`).

Workers: gthread, 4 threads each, chosen by `tickcast bench serve` (which measures sync, gthread x1
and gthread x4 on the one-row POST): on this loaded 2-core machine gthread x4 gave 0.84-5x the sync
workers' req/s (more in five runs of seven) at 0.76-1.02x their CPU per request, and it keeps
connections alive where sync closes each one (docs/serving.md); the model call holds a lock per
interpreter (4 µs). The master starts the registry watcher (MLflow and the Delta reads live there,
not in the workers), wipes the Prometheus multiprocess folder at start and marks dead workers'
metric files.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
import sys

from serving import balance, registry
from tickcast import settings as _settings

_s = _settings.load()

bind = f"{_s.serve_host}:{_s.serve_port}"
workers = _s.serve_workers
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 10
keepalive = 5
backlog = 2048
# With a listening socket per worker (post_fork, serving/balance.py): the kernel spreads connections.
reuse_port = True
accesslog = None
errorlog = "-"
loglevel = "info"
proc_name = "tickcast-serve"
wsgi_app = "serving.wsgi:app()"
# One control socket per service (the default, ~/.gunicorn/gunicorn.ctl, is shared by every gunicorn of the user).
control_socket = str(Path(_s.data_dir) / "serve" / str(_s.serve_port) / "gunicorn.ctl")


def _die_with_parent() -> None:
    """The watcher gets SIGTERM if the master dies without on_exit (kill -9): prctl(PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: on_exit still stops it
        pass


def on_starting(server):
    folder = registry.run_dir(_s)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("state.json", "feed.json", "registry.pid", "registry.error"):
        (folder / stale).unlink(missing_ok=True)
    server.registry_watcher = subprocess.Popen(
        [sys.executable, "-m", "serving.registry", "--dir", str(folder)], env=_s.child_env(),
        preexec_fn=_die_with_parent)
    # Workers answer only once the champions are known: wait for the first state (bounded).
    import time

    deadline = time.monotonic() + 60
    while not (folder / registry.STATE).exists() and time.monotonic() < deadline:
        if server.registry_watcher.poll() is not None:
            server.log.error("registry watcher exited with %s", server.registry_watcher.returncode)
            break
        time.sleep(0.05)


def post_fork(server, worker):
    balance.add_own_listener(worker, _s.serve_host, _s.serve_port, backlog)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    w = getattr(server, "registry_watcher", None)
    if w is not None and w.poll() is None:
        w.terminate()
        try:
            w.wait(10)
        except subprocess.TimeoutExpired:
            w.kill()
