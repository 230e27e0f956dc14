"""The Flask app factory: blueprints, JSON errors for everything, request metrics.

Nothing lives at module level: `create_app()` builds the app, its model cache and its feature cache.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import request
from flask.json.provider import DefaultJSONProvider
from flask_openapi3 import Info, OpenAPI
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from serving import api_models, metrics, ops, registry, v1, v2
from serving.predict import error, validation_error
from serving.feed import Feed, max_age, wanted
from serving.latest import FeedWriter
from serving.models import ModelCache
from tickcast import settings as settings_mod
from tickcast.settings import Settings

log = logging.getLogger("tickcast.serving")

# Every request costs at most this much body per row (22 numbers with long names), plus slack.
BYTES_PER_ROW, BODY_SLACK = 4096, 64 * 1024
STAT_EVERY = 0.05
# Methods named in the latency metric; anything else a client sends is "other" (bounded label values).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class StrictJSON(DefaultJSONProvider):
    """Responses never hold NaN (invalid JSON): `dumps` refuses it, so a bug shows as an error."""

    def dumps(self, obj, **kwargs):
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


class Service:
    """Per-app state: settings, the champions and the newest feature rows (the feed)."""

    def __init__(self, s: Settings, folder: Path, in_process_registry: bool):
        self.settings = s
        self.folder = folder
        self.in_process = in_process_registry
        sync = (lambda: registry.sync(s, folder)) if in_process_registry else None
        # Under gunicorn a worker looks at the watcher's files at most every STAT_EVERY seconds.
        stat_every = 0.0 if in_process_registry else STAT_EVERY
        self.models = ModelCache(folder, s.serve_reload_seconds, sync=sync, stat_every=stat_every)
        before_read = None
        if in_process_registry:       # no watcher: this process reads Delta and publishes the feed itself
            writer = FeedWriter(s, folder)
            before_read = lambda: writer.maybe_publish(wanted(self.models.get().state))  # noqa: E731
        self.feed = Feed(folder, max_age(s.serve_feed_seconds), before_read=before_read, stat_every=stat_every)

    def request_sync(self, timeout: float = 30.0) -> str | None:
        """Re-read the aliases now: in this process, or by waking the watcher and waiting for it."""
        if self.in_process:
            self.models.refresh(force_sync=True)
            return self.models.sync_error
        import os
        import signal

        pid_file = self.folder / "registry.pid"
        before = (registry.read_state(self.folder)[0] or {}).get("synced_at", 0)
        try:
            os.kill(int(pid_file.read_text()), signal.SIGUSR1)
        except (OSError, ValueError) as e:
            return f"registry watcher not reachable: {e}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, _ = registry.read_state(self.folder)
            if state and state.get("synced_at", 0) > before:
                self.models.refresh()
                return None
            time.sleep(0.05)
        return f"registry watcher did not answer within {timeout:.0f} s"


def create_app(settings: Settings | None = None, *, run_folder: Path | None = None,
               in_process_registry: bool = True) -> OpenAPI:
    """The service. Under gunicorn (`serving.wsgi`) a watcher process keeps the registry state and
    `in_process_registry` is False; otherwise this process asks MLflow itself."""
    s = settings or settings_mod.load()
    folder = Path(run_folder or (registry.run_dir(s) if not in_process_registry else
                                 Path(s.data_dir) / "serve" / f"inproc-{id(s):x}"))
    folder.mkdir(parents=True, exist_ok=True)
    app = OpenAPI(__name__, info=Info(title="tickcast prediction service", version="1"),
                  validation_error_status=422, validation_error_model=api_models.ErrorBody,
                  validation_error_callback=validation_error, doc_prefix="/docs",
                  security_schemes={  # documented; enforced by the routes (an empty setting leaves them open)
                      "api_key": {"type": "apiKey", "name": "X-API-Key", "in": "header",
                                  "description": "TICKCAST_SERVE_API_KEYS, on the prediction routes"},
                      "admin": {"type": "http", "scheme": "bearer",
                                "description": "TICKCAST_SERVE_ADMIN_TOKEN, for POST /v1/models/reload"}})
    app.json = StrictJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = s.serve_max_rows * BYTES_PER_ROW + BODY_SLACK
    app.extensions["tickcast"] = Service(s, folder, in_process_registry)

    app.register_api(v1.api)
    app.register_api(v2.api)
    app.register_api(ops.api)
    ops.register_plain_routes(app)
    svc = app.extensions["tickcast"]
    svc.models.refresh()        # load the champions and the newest feature rows before the first request
    svc.feed.snapshot()

    limit = app.config["MAX_CONTENT_LENGTH"]
    observers: dict = {}          # (route, method, status) -> the histogram's child: no label lookup per request

    @app.before_request
    def _start():
        req = request._get_current_object()       # one proxy lookup, not one per attribute
        req.environ["tickcast.t0"] = time.perf_counter()
        n = req.content_length
        if n is not None and n > limit:
            return error(413, f"body of {n} bytes is over the limit of {limit} ({s.serve_max_rows} rows)")
        return None

    @app.after_request
    def _observe(resp):
        req = request._get_current_object()
        t0 = req.environ.get("tickcast.t0")
        if t0 is not None:
            key = (req.url_rule.rule if req.url_rule is not None else "<unmatched>",
                   req.method if req.method in METHODS else "other", resp.status_code)
            child = observers.get(key)
            if child is None:
                child = observers[key] = metrics.REQUEST_SECONDS.labels(key[0], key[1], str(key[2]))
            child.observe(time.perf_counter() - t0)
        return resp

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if e.response is not None:          # flask-openapi3's abort(validation_error(...))
            return e.response
        if e.code == 413:
            return error(413, f"body over the limit of {app.config['MAX_CONTENT_LENGTH']} bytes "
                              f"({s.serve_max_rows} rows)")
        return error(e.code or 400, e.description or e.name)

    @app.errorhandler(ValidationError)
    def _invalid(e: ValidationError):
        return validation_error(e)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(500, f"internal error ({type(e).__name__}); see the service log")

    return app

