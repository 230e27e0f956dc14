"""The Dash dashboard over the Delta tables: market, model against reality, pipeline health."""
from __future__ import annotations


def create_app(settings=None):
    """Build the dashboard app (see `dashboard.app.create_app`); imported lazily so that registering
    the CLI command does not import Dash."""
    from dashboard.app import create_app as build  # deferred: heavy (imports pandas, pyarrow, deltalake)

    return build(settings)
