"""gunicorn's entry point: `serving.wsgi:app()` builds the app in each worker from the settings
(the environment `tickcast serve` gives gunicorn); the registry watcher keeps the model state."""
from __future__ import annotations

from serving import registry
from tickcast import settings


def app():
    from serving.app import create_app  # deferred: heavy (imports flask, numpy)

    s = settings.load()
    return create_app(s, run_folder=registry.run_dir(s), in_process_registry=False)
