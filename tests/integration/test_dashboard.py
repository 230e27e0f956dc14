"""The dashboard in a real browser: `tickcast dashboard` (gunicorn) over tables the pipeline's own
jobs wrote, driven by headless Chromium (Playwright, Debian's /usr/bin/chromium).

The shared `pipeline` fixture's lake is copied (this module writes to it); ingest then runs on it
over a topic with a few replayed trades and bad records, so bronze.ticks, bronze.quarantine and
the ingest query's progress (with Kafka lag) are the job's own rows too. Values in the charts are
read from the plot's own data in the page (`gd._fullData`) and compared with full reads of the
tables (delta-rs).
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from testkit.net import free_port, wait_http
from testkit.wait import until
from tickcast import lake, tables
from tickcast.timeunits import MINUTE_MS as MIN

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
REFRESH_S = 1.0
EXTRA_MINUTES = 150           # simulated after the shared pipeline's end (its champion's training end)
BAD = (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":"x","p":"5.0","q":"1","T":1723161255342,"m":true}',
       b"not json at all {")


@pytest.fixture(scope="module")
def dash_settings(shared_data, pipeline, spark, broker, tmp_path_factory):
    """A copy of the shared pipeline's lake (+ its MLflow store), with ingest's rows added."""
    from producers.publisher import Publisher
    from producers.sources import replay_records

    from jobs import sim_history
    from jobs.runner import run
    from tickcast.sources.simulator import SimConfig
    from tests.integration.conftest import PIPELINE_END_MS, PIPELINE_SYMBOLS
    from tickcast import kafka_broker

    root = tmp_path_factory.mktemp("dashboard")
    shutil.copytree(pipeline.settings.lake_uri, root / "delta")
    shutil.copytree(pipeline.settings.checkpoint_uri, root / "checkpoints")   # the streams resume, not restart
    s = dataclasses.replace(pipeline.settings, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "checkpoints"),
                            topic=f"t-{uuid.uuid4().hex[:10]}", kafka_bootstrap=broker.kafka_bootstrap,
                            dashboard_refresh_seconds=REFRESH_S)
    kafka_broker.ensure_topic(s)
    pub = Publisher(s, "replay")
    recs = [r for r in replay_records([shared_data / "ticks/ws_recordings/ethusdt_20240809.gz"]) if r.value][:300]
    for i, r in enumerate(recs):
        pub.send(r.value, r.key)
        if i in (100, 200):
            pub.send(BAD[i // 100 - 1], b"BTCUSDT")
    assert pub.close().failed == 0
    # Minutes after the champion's training end: out-of-sample predictions and outcomes.
    cfg = SimConfig(symbols=PIPELINE_SYMBOLS, rate=1.0, seed=8, start_ms=PIPELINE_END_MS, plant_signal=True,
                    signal_kind="interaction", signal_strength=0.6)
    assert sim_history.run(spark, s, cfg, EXTRA_MINUTES) > 0
    # One after the other: an available-now query bounds its input when it starts.
    run(["ingest", "features"], s, available_now=True, spark=spark)
    run(["predict"], s, available_now=True, spark=spark)
    run(["outcomes"], s, available_now=True, spark=spark)
    return s


def _serve(s):
    """`tickcast dashboard` on a free loopback port as its own process group; (url, proc)."""
    port = free_port()
    env = dataclasses.replace(s, dashboard_port=port).child_env()
    proc = subprocess.Popen([sys.executable, "-m", "tickcast.cli", "dashboard"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", 60, proc, "the dashboard",
                  detail=lambda: proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "")
    except BaseException:
        _stop(proc)
        raise
    return url, proc


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(dash_settings):
    url, proc = _serve(dash_settings)
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def empty_server(base_settings, tmp_path_factory):
    """A fresh install (no tables) whose MLflow tracking server does not answer."""
    root = tmp_path_factory.mktemp("dashboard-empty")
    s = dataclasses.replace(base_settings, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "checkpoints"),
                            mlflow_uri=f"http://127.0.0.1:{free_port()}", dashboard_refresh_seconds=REFRESH_S)
    url, proc = _serve(s)
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def catching_up_server(dash_settings, spark, broker, tmp_path_factory):
    """A copy of the lake just after a simulated stack's streams started: ingest runs now on simulated
    trades (so its newest ticks say SIMULATED and its progress is a run that just began), while the
    newest bars and predictions are the history's, minutes before that start."""
    from producers.publisher import Publisher
    from producers.sources import simulate_records

    from jobs.runner import run
    from testkit.lakes import fork
    from tickcast import kafka_broker

    s = fork(dash_settings, tmp_path_factory.mktemp("dashboard-catching-up"),
             tuple(t for t in tables.ALL.values() if lake.exists(t, dash_settings)))
    s = dataclasses.replace(s, topic=f"t-{uuid.uuid4().hex[:10]}", dashboard_refresh_seconds=REFRESH_S)
    kafka_broker.ensure_topic(s)
    pub = Publisher(s, "simulate")
    pub.publish(simulate_records(["BTCUSDT"], rate=50.0, seed=3, count=200, plant_signal=True))
    assert pub.close().failed == 0
    run(["ingest"], s, available_now=True, spark=spark)
    url, proc = _serve(s)
    yield url, s
    _stop(proc)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (README set-up) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A Playwright page that records console errors and uncaught exceptions."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.page.close()

    def goto(self, url: str) -> None:
        self.page.goto(url)

    def traces(self, graph_id: str) -> list[dict]:
        """A chart's traces as plotted: name, type, x, y (or close) from `_fullData`."""
        return self.page.evaluate("""id => {
            const gd = document.querySelector('#' + id + ' .js-plotly-plot');
            if (!gd || !gd._fullData) return null;
            const arr = a => a ? Array.from(a) : [];
            return gd._fullData.map(t => ({name: t.name, type: t.type, x: arr(t.x), y: arr(t.y), open: arr(t.open),
                                           high: arr(t.high), low: arr(t.low), close: arr(t.close)}));
        }""", graph_id)

    def wait_traces(self, graph_id: str, ok=lambda t: bool(t), timeout: float = 30.0) -> list[dict]:
        last = []

        def drawn():
            last[:] = [self.traces(graph_id)]
            return last[0] if last[0] and ok(last[0]) else None
        return until(drawn, timeout, f"#{graph_id} drawn as expected",
                     detail=lambda: f"last: {[(t['name'], len(t['x'])) for t in (last[0] if last else None) or []]}")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def wait_text(self, needle: str, timeout: float = 30.0) -> None:
        self.page.wait_for_function("n => document.body.innerText.includes(n)", arg=needle, timeout=timeout * 1000)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def bars_of(s, symbol: str) -> pd.DataFrame:
    t = lake.read(tables.BARS, s, columns=["symbol", "window_start", *OHLC]).to_pandas()
    return t, t[t["symbol"] == symbol].sort_values("window_start")


def ms(ts) -> float:
    return float(pd.Timestamp(ts).value // 10**6)


OHLC = ("open", "high", "low", "close")


def assert_candles(trace: dict, rows: pd.DataFrame) -> None:
    """A candlestick trace as drawn equals bar rows (window_start and the OHLC columns): every time
    exactly, every open, high, low and close to float precision (the figure's arithmetic rounds)."""
    assert trace["x"] == [ms(t) for t in rows["window_start"]]
    for k in OHLC:
        np.testing.assert_allclose(trace[k], [float(v) for v in rows[k]], rtol=1e-12, atol=0, err_msg=k)


def test_the_cache_equals_a_full_read_of_every_table_the_jobs_wrote(dash_settings, tmp_path):
    """Every table the jobs wrote, read by the caches, equals a full read; and so does each cache
    saved and restored by a new process's caches (a dashboard restart) without reading a file."""
    from dashboard import data, table_cache

    s = dataclasses.replace(dash_settings, dashboard_cache_dir=str(tmp_path / "cache"))
    cache = data.Lake(s)
    cache.refresh(*cache.caches)
    saved = cache.save()
    restarted = data.Lake(s)
    restarted.refresh(*restarted.caches)
    checked = 0
    for name, c in cache.caches.items():
        # A read that failed would keep no rows and look like "no table yet": errors fail here.
        assert c.error is None and restarted[name].error is None, (name, c.error, restarted[name].error)
        if c.version is None:
            assert not lake.exists(c.spec.table, dash_settings), f"{name}: the table exists but the cache is empty"
            continue
        full = table_cache.full_read(c.spec, dash_settings)
        keys = [(col, "ascending") for col in c.spec.columns if col not in ("raw_value",)]
        assert c.data.sort_by(keys).equals(full.sort_by(keys)), name
        r = restarted[name]
        assert name in saved and r.restored == c.version and r.full_loads == 0 and r.last_read == [], name
        assert r.data.sort_by(keys).equals(full.sort_by(keys)), name
        checked += full.num_rows
    assert cache["bars"].data.num_rows > 20_000 and cache["quarantine"].data.num_rows == len(BAD) and checked


def test_market_page_draws_the_tables_values_and_follows_the_symbol(server, browser, dash_settings, pipeline):
    all_bars, _ = bars_of(dash_settings, pipeline.symbols[0])
    end = all_bars["window_start"].max()
    preds = lake.read(tables.PREDICTIONS, dash_settings, columns=["symbol", "window_start", "horizon", "prob_up",
                                                                  "prediction_time"]).to_pandas()
    with Page(browser) as p:
        p.goto(server + "/")
        for i, sym in enumerate(pipeline.symbols[:2]):
            if i:
                p.page.click("#market-symbol")
                p.page.get_by_role("option", name=sym, exact=True).click()
            rows = all_bars[(all_bars["symbol"] == sym) & (all_bars["window_start"] > end - pd.Timedelta(hours=6))]
            rows = rows.sort_values("window_start")
            tr = p.wait_traces("market-graph", lambda t: t[0]["type"] == "candlestick"
                               and len(t[0]["close"]) == len(rows) and t[0]["close"][-1] == float(rows["close"].iloc[-1]))
            assert tr[0]["name"] == sym
            assert_candles(tr[0], rows)                                            # every candle, all four values
            # The overlay: one P(up) per bar with a prediction, the newest one's probability last.
            pr = preds[(preds["symbol"] == sym) & (preds["horizon"] == pipeline.horizon)
                       & (preds["window_start"] > end - pd.Timedelta(hours=6))].sort_values("window_start")
            overlay = next(t for t in tr if t["name"] == f"P(up) {pipeline.horizon} min")
            # (A pause in the predictions is drawn as a break: a NaN point, not a prediction.)
            drawn = [v for v in overlay["y"] if isinstance(v, (int, float)) and v == v]
            assert len(drawn) == pr["window_start"].nunique() > 300
            assert overlay["y"][-1] == pytest.approx(pr["prob_up"].iloc[-1])
        first_close = p.traces("market-graph")[0]["close"][-1]
        assert first_close != float(bars_of(dash_settings, pipeline.symbols[0])[1]["close"].iloc[-1])

        # A week: resampled server-side, never more than ~1,500 candles; OHLC as pandas resamples them.
        p.page.get_by_label("1 week").check()
        sym = pipeline.symbols[1]
        week = all_bars[(all_bars["symbol"] == sym) & (all_bars["window_start"] > end - pd.Timedelta(days=7))]
        ref = (week.set_index("window_start")[list(OHLC)].astype(float).resample("10min", origin="epoch")
               .agg({"open": "first", "high": "max", "low": "min", "close": "last"}).dropna().reset_index())
        tr = p.wait_traces("market-graph", lambda t: len(t[0]["close"]) == len(ref))
        assert len(ref) <= 1_500
        assert_candles(tr[0], ref)
        assert not p.errors, p.errors
        p.screenshot("market")


def test_a_bar_written_while_the_page_is_open_appears_after_the_next_refresh(server, browser, dash_settings,
                                                                            pipeline, spark):
    """The new minutes go through the bars job's own transforms and writer (`jobs.sim_history`:
    simulated trades -> bars.aggregate/to_bars -> BarWriter), as the pipeline fixture's were."""
    from jobs import sim_history
    from tickcast.sources.simulator import SimConfig
    from tests.integration.conftest import PIPELINE_END_MS, PIPELINE_SYMBOLS

    sym = pipeline.symbols[0]
    with Page(browser) as p:
        p.goto(server + "/")
        before = p.wait_traces("market-graph", lambda t: t[0]["type"] == "candlestick")[0]
        cfg = SimConfig(symbols=PIPELINE_SYMBOLS, rate=1.0, seed=11, start_ms=PIPELINE_END_MS + (EXTRA_MINUTES + 5) * MIN,
                        plant_signal=True,
                        signal_kind="interaction", signal_strength=0.6)
        assert sim_history.run(spark, dash_settings, cfg, 3) > 0
        _, rows = bars_of(dash_settings, sym)
        newest = rows.iloc[-1]
        assert ms(newest["window_start"]) > before["x"][-1]
        after = p.wait_traces("market-graph", lambda t: t[0]["x"][-1] == ms(newest["window_start"]),
                              timeout=10 * REFRESH_S + 10)[0]
        assert after["close"][-1] == float(newest["close"])
        assert not p.errors, p.errors


def test_model_page_shows_the_champion_and_scores_from_the_outcomes(server, browser, dash_settings, pipeline):
    version = pipeline.report["version"]
    o = lake.read(tables.OUTCOMES, dash_settings).to_pandas()
    o = o[(o["horizon"] == pipeline.horizon) & (o["model_version"] == version) & o["after_training_end"]]
    o = o.sort_values("target_time", kind="stable")
    # The history was scored after the fact (prediction_time is now): no row is "made before the
    # outcome", so the page says so and shows the out-of-sample rows instead.
    assert len(o) > 100 and not o["made_before_outcome"].any()
    last_hour = o[o["target_time"] > o["target_time"].max() - pd.Timedelta(minutes=60)]
    hit = last_hour["hit"].dropna().astype(bool)
    with Page(browser) as p:
        p.goto(server + "/model")
        p.wait_text(f"Champion of tickcast-h{pipeline.horizon}: v{version}")
        p.wait_text("scored after the fact")
        tr = p.wait_traces("model-rolling-hit", lambda t: any(x["name"] == "model" for x in t))
        model = next(t for t in tr if t["name"] == "model")
        assert model["y"][-1] == pytest.approx(hit.mean()) and model["x"][-1] == ms(o["target_time"].iloc[-1])
        cum = next(t for t in p.wait_traces("model-cumulative") if t["name"] == "model")
        assert cum["y"][-1] == pytest.approx(o["hit"].dropna().astype(bool).mean())
        cal = p.wait_traces("model-calibration")
        assert sum(1 for t in cal if t["name"] == "model") == 1
        drift = lake.read(tables.DRIFT, dash_settings).to_pandas()
        drift = drift[drift["model_version"] == version]
        newest = drift[drift["batch_id"] == drift.loc[drift["computed_at"].idxmax(), "batch_id"]]
        bars = p.wait_traces("model-drift")[0]
        assert sorted(bars["x"]) == sorted(newest["feature"])
        assert np.nanmax(np.array(bars["y"], float)) == pytest.approx(newest["psi"].max())
        assert "walk-forward" in p.text("#model-report").lower() and "Gate" in p.text("#model-report")
        assert not p.errors, p.errors
        p.screenshot("model")


def test_pipeline_page_shows_history_quarantine_and_a_loud_source(server, browser, dash_settings):
    prog = lake.read(tables.STREAM_PROGRESS, dash_settings, columns=["query_name", "timestamp", "lag"]).to_pandas()
    recent = prog[prog["timestamp"] > prog["timestamp"].max() - pd.Timedelta(hours=1)]
    with Page(browser) as p:
        p.goto(server + "/pipeline")
        tr = p.wait_traces("pipeline-input-rate")
        assert sorted(t["name"] for t in tr) == sorted(recent["query_name"].unique())
        lag = {t["name"]: t for t in p.wait_traces("pipeline-lag-messages")}
        with_lag = recent[recent["lag"].notna()].sort_values("timestamp")
        assert sorted(lag) == sorted(with_lag["query_name"].unique()) and "ingest" in lag
        assert lag["ingest"]["y"] == [float(v) for v in with_lag[with_lag["query_name"] == "ingest"]["lag"]]
        p.wait_text("Quarantine")
        q = p.text("#pipeline-quarantine")
        assert "not json at all {" in q
        reasons = lake.read(tables.QUARANTINE, dash_settings, columns=["reason"]).to_pandas()["reason"]
        for reason in reasons.unique():
            assert reason in q
        # The header says where the data comes from: the newest bronze.ticks rows are a replay.
        assert p.text("#header-source") == "REPLAY"
        # The status is red exactly when the header lists a crossed threshold.
        status, alerts = p.text("#header-status"), p.text("#header-alerts")
        assert status in ("● OK", "● ALERT") and (status == "● ALERT") == bool(alerts.strip())
        assert not p.errors, p.errors
        p.screenshot("pipeline")


def test_a_fresh_install_renders_its_messages(empty_server, browser):
    with Page(browser) as p:
        p.goto(empty_server + "/")
        p.wait_text("No bars yet")
        assert p.text("#header-source") == "NO DATA"
        p.screenshot("empty-market")
        p.goto(empty_server + "/model")
        p.wait_text("No outcomes yet")
        p.wait_text("did not answer", timeout=20)        # MLflow unreachable: said, not crashed
        p.goto(empty_server + "/pipeline")
        p.wait_text("No streaming progress yet")
        p.wait_text("No quarantined records")
        p.screenshot("empty-pipeline")
        assert not p.errors, p.errors


def test_a_stack_catching_up_after_its_start_says_so_and_shows_no_red_alert(catching_up_server, browser):
    from dashboard import health
    from tickcast.catchup import CATCH_UP_LIMIT_S

    url, s = catching_up_server
    prog = lake.read(tables.STREAM_PROGRESS, s, columns=["query_name", "run_id", "timestamp"]).to_pandas()
    started = health.streams_started(prog)
    bars = lake.read(tables.BARS, s, columns=["window_start"]).to_pandas()["window_start"]
    assert bars.max() + pd.Timedelta(minutes=1) < started            # no bar of a minute after the start yet
    assert (pd.Timestamp.now(tz="UTC") - started).total_seconds() < CATCH_UP_LIMIT_S - 60
    with Page(browser) as p:
        p.goto(url + "/pipeline")
        p.wait_text("CATCHING UP")
        assert p.text("#header-source") == "SIMULATED"
        assert p.text("#header-status") == "◐ CATCHING UP"
        alerts = p.text("#header-alerts")
        assert alerts.startswith("catching up: waiting for the first live minute's bar"), alerts
        # Today's rule would have alerted: the newest bar is hours old.
        assert "ALERT" not in p.text("#header")
        color = p.page.eval_on_selector("#header-status", "e => getComputedStyle(e).backgroundColor")
        assert color == "rgb(255, 246, 224)", color       # amber, not the alert's red
        assert not p.errors, p.errors
        p.screenshot("catching-up")
