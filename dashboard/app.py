"""The Dash app factory: pages from `dashboard/pages/`, the header on every page, `/healthz`.

State lives in the app it belongs to (a `Context` per app: the settings, the Delta caches, the
MLflow metadata), never at module level: gunicorn builds one app per worker process.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from dashboard import figures, health, ids
from dashboard.data import NEWEST, Lake, Models, newest_source
from tickcast.timeunits import DAY_MS, MINUTE_MS
from tickcast.settings import PREFIX, Settings, SettingsError, load

log = logging.getLogger("tickcast.dashboard")
PAGES = Path(__file__).resolve().parent / "pages"
SOURCE_TTL = 30.0
RECENT_MINUTES = 15      # a query with no progress row in this long is not in the header's checks
# The caches that changed are saved this often, and when the dashboard stops (`close`): a week's
# caches are ~25 MB, so saving every few seconds would write hundreds of GB a day for nothing.
SAVE_SECONDS = 300.0


class Context:
    """One app's state: settings, the Delta caches, MLflow metadata, and small memos keyed by versions."""

    def __init__(self, s: Settings, full_scan: bool = False):
        self.settings = s
        self.lake = Lake(s, full_scan=full_scan)
        self.models = Models(s)
        self._memo: dict[str, tuple] = {}
        self._source: tuple[float, str | None] = (0.0, None)
        self._lock = threading.Lock()
        self.prefetched = threading.Event()
        self.stopped = threading.Event()

    def keep_saved(self, every: float = SAVE_SECONDS) -> None:
        """Save the caches that changed, every `every` seconds from the end of the prefetch until
        `stopped` (a thread from start-up): a restarted dashboard then starts from them."""
        self.prefetched.wait()
        while True:
            self.lake.save()
            if self.stopped.wait(every):
                return

    def close(self) -> None:
        """Stop the saver and save what changed since its last round (gunicorn's `worker_exit`)."""
        self.stopped.set()
        if self.settings.dashboard_cache_dir:
            self.lake.save()

    def prefetch(self) -> None:
        """Read what the pages show, at the widest span each offers, before anyone asks (a thread
        from start-up): a page's first load then finds its tables read. A week of small files per
        table takes 0.2-0.3 s of reading each (docs/dashboard.md). Failures stay in the caches'
        `error`, which the pages show."""
        lake = self.lake
        week = (figures.RANGES["1w"] + 60) * MINUTE_MS   # the market's widest range, outcomes' hour included
        t0 = time.monotonic()
        try:
            self.ticks_source()
            for names, span in ((("bars", "progress"), RECENT_MINUTES * MINUTE_MS),  # the header first
                                (("features", "predictions"), NEWEST),
                                (("bars", "predictions"), week), (("outcomes", "scores", "drift"), None),
                                (("progress",), figures.RANGES["1w"] * MINUTE_MS),
                                (("quarantine", "late_bars"), None), (("gapfill",), DAY_MS)):
                lake.refresh(*names, span_ms=span)
            restored = [n for n, c in lake.caches.items() if c.restored is not None]
            log.info("prefetch: the pages' tables read in %.1f s (%d of %d caches started from their saved copy)",
                     time.monotonic() - t0, len(restored), len(lake.caches))
        except Exception as e:  # never fatal: the pages read on demand as without it
            log.warning("prefetch failed: %s", e)
        finally:
            self.prefetched.set()

    def memo(self, key: str, token, build):
        """`build()` once per token (e.g. the versions of the tables it reads)."""
        hit = self._memo.get(key)
        if hit is not None and hit[0] == token:
            return hit[1]
        value = build()
        self._memo[key] = (token, value)
        return value

    def ticks_source(self) -> str | None:
        """The newest bronze.ticks rows' source, re-read at most every SOURCE_TTL seconds."""
        at, value = self._source
        if time.monotonic() - at > SOURCE_TTL:
            try:
                value = newest_source(self.settings)
            except Exception:   # being written, or compacted: keep the previous answer
                pass
            self._source = (time.monotonic(), value)
        return value

    def freshness(self, since=None):
        """Bar end -> commit of the bar, the feature row and the prediction, per minute (memoized);
        `since`: only minutes from then on (the header's recent check, not the whole history).

        It reads the tables' file metadata (commit times and time statistics), not their rows.
        """
        names = ("bars", "features", "predictions")
        token = self.lake.refresh(*names, span_ms=NEWEST)
        return self.memo("freshness" if since is None else "freshness-recent", (token, since), lambda: figures.freshness(
            {n: figures.stage_commits(self.lake[n].files, since=since) for n in names}))


def create_app(settings: Settings | None = None, *, full_scan: bool = False, prefetch: bool = True):
    """Build the dashboard (a Dash app; `.server` is its Flask WSGI app for gunicorn).

    `full_scan` re-reads every table in full at each refresh instead of incrementally: only the
    benchmark's reference uses it. `prefetch`: read the pages' tables in a thread from start-up
    (off: the benchmark's empty-cache measurements).
    """
    import dash
    from dash import dcc, html

    s = settings or load()
    if s.dashboard_cache_dir and not full_scan:
        try:
            Path(s.dashboard_cache_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SettingsError(f"{PREFIX}DASHBOARD_CACHE_DIR: cannot create {s.dashboard_cache_dir!r}: {e}") from e
    app = dash.Dash(__name__, use_pages=True, pages_folder=str(PAGES), title="tickcast", update_title=None,
                    suppress_callback_exceptions=True)
    context = Context(s, full_scan)
    app.server.config["TICKCAST_CONTEXT"] = context
    app.layout = html.Div([
        dcc.Interval(id=ids.TICK, interval=int(s.dashboard_refresh_seconds * 1000), n_intervals=0),
        header(),
        dash.page_container,
    ], style={"fontFamily": "system-ui, sans-serif", "margin": "0 16px"})
    register_header(app, context)
    for page in dash.page_registry.values():
        sys.modules[page["module"]].register_callbacks(app, context)

    @app.server.get("/healthz")
    def healthz():
        return {"status": "ok"}

    # MLflow's client import and first read take seconds: start them now, off the request path.
    threading.Thread(target=context.models.get, kwargs={"wait": 0}, daemon=True).start()
    if prefetch and not full_scan:
        threading.Thread(target=context.prefetch, daemon=True, name="dashboard-prefetch").start()
    else:
        context.prefetched.set()
    if s.dashboard_cache_dir and not full_scan:
        threading.Thread(target=context.keep_saved, daemon=True, name="dashboard-cache-saver").start()
    return app


def wsgi():
    """gunicorn's entry: `gunicorn 'dashboard.app:wsgi()'` (settings from the environment)."""
    return create_app().server


def header():
    from dash import dcc, html

    cell = {"marginRight": "18px"}
    return html.Div([
        html.Span("tickcast", style={"fontWeight": 700, "fontSize": "20px", **cell}),
        html.Span(id=ids.HEADER_SOURCE, style={"fontWeight": 700, "padding": "2px 8px", "borderRadius": "4px",
                                               "background": "#333", "color": "white", **cell}),
        html.Span(id=ids.HEADER_BAR_AGE, style=cell),
        html.Span(id=ids.HEADER_CHAMPIONS, style=cell),
        html.Span(id=ids.HEADER_STATUS, style={"fontWeight": 700, **cell}),
        html.Nav([dcc.Link("Market", href="/", style=cell), dcc.Link("Model", href="/model", style=cell),
                  dcc.Link("Pipeline", href="/pipeline", style=cell),
                  dcc.Link("Backtest", href="/backtest", style=cell)], style={"display": "inline"}),
        html.Div(id=ids.HEADER_ALERTS, style={"fontSize": "13px", "color": "#8a1c1c"}),
    ], id=ids.HEADER, style={"padding": "10px 0", "borderBottom": "1px solid #ddd", "marginBottom": "8px"})


def header_state(context: Context, now: pd.Timestamp) -> dict:
    """What the header shows, from the caches (no figure work)."""
    lake, s = context.lake, context.settings
    recent = RECENT_MINUTES * MINUTE_MS
    # Every table the header reads, at once (the freshness check's below then finds them current).
    lake.refresh_spans({"bars": recent, "progress": recent, "features": NEWEST, "predictions": NEWEST})
    bars = lake["bars"]
    newest = bars.max("window_start")
    files = bars.files
    commit = files["modification_time"].max() if files is not None and len(files) else None
    word = health.source_word(context.ticks_source(), pd.DataFrame() if newest is None else bars.rows(
        pc.field("window_start") == newest, ["symbol", "window_start", "source"]))
    prog = lake["progress"]
    end = prog.max("timestamp")
    # Each query's newest row is within the last minutes of the table (queries report every <= 10 s
    # when idle); converting 8 days of rows at every refresh would cost ~100 ms.
    recent_rows = pd.DataFrame() if end is None else prog.rows(
        pc.field("timestamp") >= end - pd.Timedelta(minutes=RECENT_MINUTES))
    latest = pd.DataFrame() if end is None else health.latest_per_query(figures.progress_series(recent_rows))
    # Only the newest minutes matter here: a week of files' commit times cost ~70 ms per new minute.
    fresh = health.newest_freshness(context.freshness(
        since=None if newest is None else newest - pd.Timedelta(minutes=RECENT_MINUTES)))
    checks = health.checks(s, now, newest, commit, fresh, latest)
    catching = health.catching_up(word, now, health.streams_started(recent_rows), newest,
                                  lake["predictions"].max("window_start"), checks)
    return {"source": word, "newest": newest, "checks": checks, "catch_up": catching,
            "errors": lake.errors("bars", "progress", "features", "predictions")}


def register_header(app, context: Context) -> None:
    from dash import Input, Output, html

    from dashboard.components import contained  # deferred: heavy (imports dash, plotly)

    @app.callback(Output(ids.HEADER_SOURCE, "children"), Output(ids.HEADER_BAR_AGE, "children"),
                  Output(ids.HEADER_CHAMPIONS, "children"), Output(ids.HEADER_STATUS, "children"),
                  Output(ids.HEADER_STATUS, "style"), Output(ids.HEADER_ALERTS, "children"),
                  Input(ids.TICK, "n_intervals"))
    @contained(6, 5)
    def update_header(_n):
        now = pd.Timestamp.now(tz="UTC")
        st = header_state(context, now)
        if st["newest"] is None:
            age = "no bars yet"
        else:
            secs = (now - (st["newest"] + pd.Timedelta(minutes=1))).total_seconds()
            age = f"newest bar {st['newest']:%Y-%m-%d %H:%M} UTC, {_ago(secs)} old"
        info, err = context.models.get(wait=0)
        if info is None:
            champs = "champions: " + ("MLflow unreachable" if err else "loading…")
        else:
            champs = "champions: " + ", ".join(
                f"h{h} v{m.champion}" if m.champion else f"h{h} none" for h, m in sorted(info.items()))
        crossed = [c for c in st["checks"] if c.crossed]
        ok = not crossed and not st["errors"]
        base = {"fontWeight": 700, "marginRight": "18px", "padding": "2px 8px", "borderRadius": "4px"}
        if st["catch_up"].catching_up:
            # The start's backlog, not a fault: amber, with what it waits for (and read errors, if any).
            words = " · ".join([st["catch_up"].describe(), *st["errors"]])
            return (st["source"], age, champs, "◐ CATCHING UP", {**base, "color": "#7a5200", "background": "#fff6e0"},
                    html.Span(words, style={"color": "#7a5200"}))
        status = "● OK" if ok else "● ALERT"
        style = {**base, "color": "#1e7d32" if ok else "white", "background": "transparent" if ok else "#c62828"}
        alerts = [c.describe() for c in crossed] + st["errors"]
        return st["source"], age, champs, status, style, " · ".join(alerts)


def _ago(secs: float) -> str:
    secs = max(0.0, secs)
    if secs < 120:
        return f"{secs:.0f} s"
    if secs < 7200:
        return f"{secs / 60:.0f} min"
    if secs < 172800:
        return f"{secs / 3600:.1f} h"
    return f"{secs / 86400:.0f} days"
