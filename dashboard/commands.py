"""`tickcast dashboard`: the dashboard under gunicorn (never Flask's development server)."""
from __future__ import annotations

import dataclasses

import click

from tickcast import cli_common

# One worker process: the Delta caches are per process (a second worker would hold and refresh a
# second copy); threads serve the pages' concurrent callbacks, which release the GIL in Arrow.
WORKERS = 1
THREADS = 4


def _worker_exit(_server, worker) -> None:
    """A stopping worker saves its read caches (a restart then starts from them; dashboard/snapshot.py)."""
    context = getattr(worker.wsgi, "config", {}).get("TICKCAST_CONTEXT")
    if context is not None:
        context.close()


def serve(settings, host: str, port: int) -> None:
    """Run gunicorn in this process on the app factory; returns when gunicorn stops (SIGTERM/SIGINT)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for k, v in {"bind": f"{'[' + host + ']' if ':' in host else host}:{port}", "workers": WORKERS,
                         "threads": THREADS, "worker_class": "gthread", "timeout": 60, "graceful_timeout": 10,
                         "accesslog": None, "proc_name": "tickcast-dashboard", "worker_exit": _worker_exit}.items():
                self.cfg.set(k, v)

        def load(self):
            from dashboard.app import create_app  # deferred: heavy (imports pandas, pyarrow, deltalake)

            return create_app(settings).server

    Server().run()


def register(cli: click.Group) -> None:
    """Add `tickcast dashboard` to the root CLI."""

    @cli.command(help="Serve the dashboard (Dash under gunicorn) over the Delta tables: market, model, pipeline.")
    @click.option("--host", default=None, help="bind address [default: TICKCAST_DASHBOARD_HOST, 127.0.0.1]")
    @click.option("--port", type=click.IntRange(1, 65535), default=None,
                  help="port [default: TICKCAST_DASHBOARD_PORT, 8050]")
    def dashboard(host, port) -> None:
        s = cli_common.settings()
        s = dataclasses.replace(s, dashboard_host=host or s.dashboard_host, dashboard_port=port or s.dashboard_port)
        click.echo(f"dashboard: http://{s.dashboard_host}:{s.dashboard_port}/ (gunicorn, {WORKERS} worker x "
                   f"{THREADS} threads) over {s.lake_uri}", err=True)
        serve(s, s.dashboard_host, s.dashboard_port)
