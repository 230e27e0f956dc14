"""The prediction service: Flask under gunicorn, LiteRT champions, KServe V2, Prometheus metrics.

`serving.create_app(settings=None)` builds the app; `tickcast serve` runs it under gunicorn.
"""


def __getattr__(name):
    if name == "create_app":   # lazily: `tickcast --help` imports serving.commands, not Flask
        from serving.app import create_app  # deferred: heavy (imports flask, numpy)

        return create_app
    raise AttributeError(name)
