"""`tickcast serve`: gunicorn over the app factory (never the Flask development server)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys

import click

from serving import registry
from tickcast import settings


def metrics_dir(s, port: int):
    return registry.run_dir(s, port) / "metrics"


def gunicorn_argv(config: str = "python:serving.gunicorn_conf") -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", config]


def child_env(s) -> dict[str, str]:
    """The settings as environment, with a fresh Prometheus multiprocess folder (wiped: counts of an
    earlier run must not add up)."""
    mp = metrics_dir(s, s.serve_port)
    shutil.rmtree(mp, ignore_errors=True)
    mp.mkdir(parents=True, exist_ok=True)
    env = s.child_env()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(mp)
    return env


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.option("--host", default=None, help="bind address (default TICKCAST_SERVE_HOST, 127.0.0.1)")
    @click.option("--port", type=int, default=None, help="port (default TICKCAST_SERVE_PORT, 8000)")
    @click.option("--workers", type=int, default=None, help="gunicorn workers (default TICKCAST_SERVE_WORKERS, 2)")
    def serve(host, port, workers):
        """Run the prediction service: gunicorn, LiteRT champions, hot reload, /metrics, /openapi.json."""
        s = settings.load()
        s = dataclasses.replace(s, serve_host=host or s.serve_host, serve_port=port or s.serve_port,
                                serve_workers=workers or s.serve_workers)
        if s.serve_workers < 1:
            raise click.BadParameter("must be at least 1", param_hint="--workers")
        # The MLflow store created (migrated) here, once, not by the watcher beside other first users.
        from tickcast import model_io  # deferred: heavy (imports mlflow)

        model_io.configure(s)
        env = child_env(s)
        click.echo(f"serve: http://{s.serve_host}:{s.serve_port} ({s.serve_workers} gunicorn workers; "
                   f"docs at /docs, OpenAPI at /openapi.json)", err=True)
        argv = gunicorn_argv()
        os.execve(argv[0], argv, env)
