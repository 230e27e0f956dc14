"""The app factory and its callbacks through Dash's own endpoint (Flask test client, no browser):
a fresh install answers every callback with a message, never a 500; the health checks' thresholds."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from dashboard import health


@pytest.fixture
def settings(tmp_path):
    from tickcast.settings import load

    return load({"TICKCAST_DATA_DIR": str(tmp_path), "TICKCAST_MLFLOW_URI": f"sqlite:///{tmp_path}/mlflow/m.db"})


def call(client, app, prefix: str, values: dict, changed: str):
    key = next(k for k in app.callback_map if k.startswith(prefix))
    cb = app.callback_map[key]
    arg = lambda d: {**d, "value": values.get(f"{d['id']}.{d['property']}")}  # noqa: E731
    outs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in key.strip(".").split("...")]
    return client.post("/_dash-update-component", json={
        "output": key, "outputs": outs, "inputs": [arg(d) for d in cb["inputs"]],
        "state": [arg(d) for d in cb["state"]], "changedPropIds": [changed]})


def test_a_fresh_install_answers_every_callback_with_a_message(settings):
    import dashboard

    app = dashboard.create_app(settings)
    info, err = app.server.config["TICKCAST_CONTEXT"].models.get(wait=60)   # MLflow's first import is slow
    assert info is not None and err is None
    client = app.server.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    for path in ("/", "/model", "/pipeline"):
        assert client.get(path).status_code == 200
    seen = []
    for prefix, values, changed in (
            ("..header-source", {"tick.n_intervals": 0}, "tick.n_intervals"),
            ("..market-graph", {"tick.n_intervals": 0, "market-range.value": "6h"}, "market-range.value"),
            ("..model-rolling-hit", {"tick.n_intervals": 0, "model-horizon.value": 5, "model-version.value": None},
             "model-horizon.value"),
            ("..model-version", {"tick.n_intervals": 0, "model-horizon.value": 5}, "model-horizon.value"),
            ("..pipeline-input-rate", {"tick.n_intervals": 0, "pipeline-span.value": "1h"}, "pipeline-span.value"),
            ("..pipeline-quarantine", {"tick.n_intervals": 0}, "tick.n_intervals")):
        r = call(client, app, prefix, values, changed)
        assert r.status_code == 200, (prefix, r.data[:300])
        seen.append(r.get_data(as_text=True))
    text = " ".join(seen)
    for words in ("NO DATA", "No bars yet", "No outcomes yet", "No champion for tickcast-h5: no version is registered",
                  "No streaming progress yet", "No quarantined records"):
        assert words in text, words
    assert "Could not draw" not in text


def test_an_unchanged_refresh_returns_no_update(settings):
    import dashboard

    app = dashboard.create_app(settings)
    client = app.server.test_client()
    client.get("/")
    values = {"tick.n_intervals": 1, "pipeline-span.value": "1h"}
    first = call(client, app, "..pipeline-input-rate", values, "pipeline-span.value").get_json()
    seen = first["response"]["pipeline-seen"]["data"]
    again = call(client, app, "..pipeline-input-rate", {**values, "pipeline-seen.data": seen}, "tick.n_intervals")
    assert again.status_code == 204
    # The user's own change always redraws.
    assert call(client, app, "..pipeline-input-rate", {**values, "pipeline-seen.data": seen},
                "pipeline-span.value").status_code == 200


def test_health_checks_cross_their_thresholds(settings):
    s = dataclasses.replace(settings, alert_bar_age_seconds=180, alert_freshness_seconds=10, alert_lag_seconds=30,
                            alert_batch_seconds=5)
    now = pd.Timestamp("2026-01-01 12:00:00", tz="UTC")
    latest = pd.DataFrame({"query_name": ["ingest", "bars"], "lag_seconds": [31.0, None],
                           "batch_seconds": [0.4, 4.9]})
    fresh_bar = now - pd.Timedelta(minutes=2)               # ends 60 s ago
    c = {x.name: x for x in health.checks(s, now, fresh_bar, now - pd.Timedelta(seconds=50), 9.5, latest)}
    assert c["bar age"].value == 60 and not c["bar age"].crossed
    assert not c["freshness"].crossed and c["Kafka lag"].crossed and c["Kafka lag"].detail == "ingest"
    assert c["batch duration"].value == 4.9 and not c["batch duration"].crossed
    # A replay: bars hours old by trade time, but written seconds ago -> not stale.
    old = now - pd.Timedelta(hours=5)
    c = {x.name: x for x in health.checks(s, now, old, now - pd.Timedelta(seconds=5), None, latest.iloc[:0])}
    assert not c["bar age"].crossed and c["freshness"].value is None and c["Kafka lag"].value is None
    # Stopped: nothing written for 10 minutes.
    c = {x.name: x for x in health.checks(s, now, old, now - pd.Timedelta(minutes=10), 11.0, latest)}
    assert c["bar age"].crossed and c["freshness"].crossed


def test_the_source_is_said_from_ticks_then_bars():
    bars = pd.DataFrame({"symbol": ["BTCUSDT-SIM"], "window_start": [pd.Timestamp("2026-01-01", tz="UTC")],
                         "source": ["ticks"]})
    assert health.source_word("live", bars) == "LIVE" and health.source_word("gapfill", bars) == "LIVE"
    assert health.source_word("replay", bars) == "REPLAY" and health.source_word("simulate", bars) == "SIMULATED"
    assert health.source_word(None, bars) == "SIMULATED"
    assert health.source_word(None, bars.assign(symbol="BTCUSDT", source="klines")) == "BACKFILL (klines)"
    assert health.source_word(None, bars.iloc[:0]) == "NO DATA"


def test_a_stopping_dashboard_saves_its_caches_and_a_new_one_starts_from_them(settings):
    """The saver writes the caches after the start-up prefetch; `close()` (gunicorn's worker_exit)
    saves what changed since; a new app then starts from that copy without reading a file."""
    import time

    from deltalake import write_deltalake

    import dashboard
    from dashboard import snapshot
    from tests.unit.test_dashboard_data import MIN, T0, bar_rows
    from tickcast import tables

    write_deltalake(tables.BARS.path(settings), bar_rows(["BTCUSDT"], T0, 3), mode="append")
    app = dashboard.create_app(settings)
    context = app.server.config["TICKCAST_CONTEXT"]
    context.prefetched.wait(60)
    key = snapshot.key(context.lake["bars"].uri, context.lake["bars"].spec)
    for _ in range(100):                      # the saver's first round, right after the prefetch
        saved = snapshot.load(settings.dashboard_cache_dir, key)
        if saved is not None:
            break
        time.sleep(0.1)
    assert saved is not None and saved.version == 0 and saved.data.num_rows == 3
    write_deltalake(tables.BARS.path(settings), bar_rows(["BTCUSDT"], T0 + 3 * MIN, 1), mode="append")
    context.lake.refresh("bars", span_ms=None)
    context.close()
    assert snapshot.load(settings.dashboard_cache_dir, key).version == 1
    from dashboard.app import create_app

    again = create_app(settings, prefetch=False).server.config["TICKCAST_CONTEXT"]
    assert again.lake.refresh("bars") == (1,)
    bars = again.lake["bars"]
    assert bars.restored == 1 and bars.full_loads == 0 and bars.data.num_rows == 4
    again.close()


def test_a_cache_folder_that_cannot_be_made_fails_at_start_naming_the_setting(settings, tmp_path):
    import dashboard
    from tickcast.settings import SettingsError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = dataclasses.replace(settings, dashboard_cache_dir=str(blocker / "cache"))
    with pytest.raises(SettingsError, match="^TICKCAST_DASHBOARD_CACHE_DIR: cannot create"):
        dashboard.create_app(bad)
