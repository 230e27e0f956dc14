"""gunicorn's entry point: `serving.wsgi:app()` builds the app in each worker from the settings
(the environment `tickcast serve` gives gunicorn); the registry watcher keeps the model state."""
from __future__ import annotations


def app():
    from serving import registry
    from serving.app import create_app
    from tickcast import settings

    s = settings.load()
    return create_app(s, run_folder=registry.run_dir(s), in_process_registry=False)
