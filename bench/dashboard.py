"""`tickcast bench dashboard`: the dashboard's callbacks and pages on a week of data.

The data set: a week of 1-minute bars x 3 symbols (real klines from a `--klines` month file when
given: three different weeks of it under three names, shifted to end now; synthetic random
walks otherwise), their feature rows (`tickcast.features.compute`, the stream's own
math), predictions of a fixed rule for horizons 1 and 5, outcomes and rolling scores realized
by the outcomes job's own pure functions (`jobs.outcomes.realize`, `model_scores`), drift rows
(`tickcast.drift.report`) and ops.stream_progress history. Every table is written with the
delta-rs as many small appends, not compacted: one append (one commit, one file) per 20 minutes
(504 files per table for the week), then the last hour one minute at a time, as the live pipeline's
delta-rs appends write them.

Measured, per callback, through the real Dash endpoint (`POST /_dash-update-component`, Flask's
test client, in this process):
- cold: the first call of a freshly built app with its caches empty (no start-up prefetch, no
  saved caches): a dashboard's first start ever, against a week it never read;
- restart: the first call of a freshly built app (no prefetch) that starts from the caches an
  earlier app saved (`TICKCAST_DASHBOARD_CACHE_DIR`, dashboard/snapshot.py): a restarted dashboard;
- after start-up: the first call of a freshly built app once its start-up prefetch has read the
  pages' tables (what a page opened on a running `tickcast dashboard` meets);
- warm: the call again with an input changed (a full redraw from warm caches);
- unchanged: a timer refresh when no table changed (the callback returns no update);
- after one append: a timer refresh after one new minute was appended to every table;
and the same after-append refresh with the caches replaced by a full table scan per refresh
(the reference). Then, against `tickcast dashboard` (gunicorn) on the same tables, headless
Chromium (Playwright, /usr/bin/chromium): per page the time from navigation to every chart
drawn, the render of each chart alone (`Plotly.react` of its own figure, timed in the page), and
on the market page each range switch from click to `plotly_afterplot`.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.outcomes import model_scores, realize_frames
from tickcast import features as F, schemas, tables
from tickcast.settings import Settings
from tickcast.timeunits import DAY_MS, MINUTE_MS as MIN
from testkit.net import free_port, wait_http

WEEK_MINUTES = 7 * 1440
CHUNK_MINUTES = 20
LIVE_MINUTES = 60
HORIZONS = (1, 5)
SYMBOLS = ("BTCUSDT", "BTCUSDT-W2", "BTCUSDT-W3")
CHROMIUM = "/usr/bin/chromium"
REPEATS = 3


# ---------------------------------------------------------------- the data set

def week_bars(end_ms: int, minutes: int = WEEK_MINUTES, klines: Path | None = None) -> tuple[pd.DataFrame, str]:
    """A week of 1-minute bars for the three symbols ending at `end_ms` (exclusive); and where from.

    From a Binance 1m kline file of at least three weeks when one is given (`--klines`), else
    synthetic random walks.
    """
    start = end_ms - minutes * MIN
    frames = []
    if klines is not None:
        raw = pd.read_csv(klines, header=None, usecols=range(11), dtype=str,
                          names=["t", "open", "high", "low", "close", "volume", "ct", "quote_volume", "trades",
                                 "taker_buy_volume", "taker_buy_quote_volume"])
        for i, sym in enumerate(SYMBOLS):
            part = raw.iloc[i * minutes:(i + 1) * minutes].reset_index(drop=True)
            part.insert(0, "symbol", sym)
            part["t"] = start + np.arange(len(part)) * MIN
            frames.append(part)
        origin = f"real klines {Path(klines).name}: its weeks 1-3, shifted to end now"
    else:
        rng = np.random.default_rng(0)
        for sym in SYMBOLS:
            close = 40_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, minutes)))
            opn = np.r_[close[0], close[:-1]]
            vol = rng.gamma(2.0, 5.0, minutes)
            f = lambda a: np.char.mod("%.8f", a)  # noqa: E731
            frames.append(pd.DataFrame({
                "symbol": sym, "t": start + np.arange(minutes) * MIN, "open": f(opn),
                "high": f(np.maximum(opn, close) * 1.0004), "low": f(np.minimum(opn, close) * 0.9996),
                "close": f(close), "volume": f(vol), "quote_volume": f(vol * close),
                "trades": rng.integers(10, 500, minutes).astype(str), "taker_buy_volume": f(vol / 2),
                "taker_buy_quote_volume": f(vol * close / 2)}))
        origin = "synthetic random walks (no --klines file given)"
    df = pd.concat(frames, ignore_index=True)
    return df, origin


def bar_table(k: pd.DataFrame):
    """Kline strings -> silver.bars_1m rows (the backfill's conversion, but source = ticks as live)."""
    import pyarrow as pa

    sch = schemas.BARS.arrow_type()
    ts = lambda ms: pa.array(np.asarray(ms, "int64") * 1000).cast(pa.timestamp("us", tz="UTC"))  # noqa: E731
    dec = lambda c, t: pa.array(k[c].to_numpy(str)).cast(t)  # noqa: E731
    vol = k["volume"].astype(float).to_numpy()
    buy = k["taker_buy_volume"].astype(float).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(vol > 0, k["quote_volume"].astype(float).to_numpy() / vol, np.nan)
        imb = np.where(vol > 0, (2 * buy - vol) / vol, np.nan)
    sell = np.char.mod("%.8f", np.maximum(vol - buy, 0))
    n = len(k)
    cols = {
        "symbol": pa.array(k["symbol"].to_numpy(str)), "window_start": ts(k["t"]), "window_end": ts(k["t"] + MIN),
        "open": dec("open", sch.field("open").type), "high": dec("high", sch.field("high").type),
        "low": dec("low", sch.field("low").type), "close": dec("close", sch.field("close").type),
        "volume": dec("volume", sch.field("volume").type),
        "quote_volume": dec("quote_volume", sch.field("quote_volume").type),
        "vwap": pa.array(vwap), "trade_count": pa.array(k["trades"].astype("int64").to_numpy()),
        "taker_buy_volume": dec("taker_buy_volume", sch.field("taker_buy_volume").type),
        "taker_buy_quote_volume": dec("taker_buy_quote_volume", sch.field("taker_buy_quote_volume").type),
        "taker_sell_volume": pa.array(sell).cast(sch.field("taker_sell_volume").type),
        "imbalance": pa.array(imb), "first_trade_id": pa.nulls(n, pa.int64()), "last_trade_id": pa.nulls(n, pa.int64()),
        "source": pa.array(["ticks"] * n), "event_kind": pa.array(["trade"] * n),
        "is_complete": pa.array(np.ones(n, bool)), "created_at": ts(k["t"] + MIN + 2000),
    }
    return pa.table([cols[f.name] for f in sch], schema=sch)


def derived(bars, origin_start_ms: int) -> dict[str, pd.DataFrame]:
    """Feature rows, predictions and outcomes for the bars (the pipeline's pure functions)."""
    from tickcast import features, model_io  # deferred: heavy (imports mlflow)

    bdf = bars.to_pandas()
    feats = features.compute(features.bars_frame(bdf))
    fv = features.feature_version()
    preds = []
    training_end = origin_start_ms - MIN
    r1 = feats["ret_1"].fillna(0).to_numpy()
    for h in HORIZONS:
        p = np.clip(0.5 + 40 * r1 / np.sqrt(h), 0.05, 0.95)
        preds.append(pd.DataFrame({
            "symbol": feats["symbol"], "window_start": feats["window_ms"], "horizon": np.int32(h),
            "target_time": feats["window_ms"] + h * MIN, "model_name": model_io.model_name(h), "model_version": "1",
            "feature_version": fv, "prob_up": p, "pred_return": 0.1 * r1, "close": feats["close"],
            "training_end": training_end, "climatology_prob_up": 0.5, "momentum_prob_up": np.clip(0.5 + 10 * r1, 0, 1),
            "momentum_return": 0.05 * r1, "prediction_time": feats["window_ms"] + MIN + 2_500,
            "batch_id": (feats["window_ms"] // MIN).astype("int64")}))
    preds = pd.concat(preds, ignore_index=True)
    bars_ms = pd.DataFrame({"symbol": bdf["symbol"].astype(str), "window_ms": features.bars_frame(bdf)["window_ms"],
                            "close": bdf["close"].astype(float)})
    last = bars_ms.groupby("symbol")["window_ms"].max()
    due = preds[preds["target_time"] <= preds["symbol"].map(last)]
    realized = realize_frames(due, bars_ms)
    outcomes = due.merge(realized, on=["symbol", "window_start", "horizon", "model_name", "model_version"])
    outcomes["outcome_time"] = outcomes["target_time"] + MIN + 30_000
    return {"features": feats, "predictions": preds, "outcomes": outcomes}


def _arrow(df: pd.DataFrame, schema: schemas.Schema, ms_cols=()):
    import pyarrow as pa

    sch = schema.arrow_type()
    arrays = []
    for f in sch:
        v = df[f.name]
        if f.name in ms_cols:
            arrays.append(pa.array(np.asarray(v, "int64") * 1000).cast(f.type))
        else:
            arrays.append(pa.array(v.to_numpy() if hasattr(v, "to_numpy") else v, from_pandas=True).cast(f.type))
    return pa.table(arrays, schema=sch)


def progress_rows(lo_ms: int, hi_ms: int, seed: int) -> pd.DataFrame:
    """ops.stream_progress history for the five queries over [lo, hi): ingest and bars every 10 s,
    outcomes every 30 s, features and predict every minute."""
    rng = np.random.default_rng(seed)
    parts = []
    for q, every, rate, dur in (("ingest", 10_000, 50.0, 350), ("bars", 10_000, 50.0, 250),
                                ("features", MIN, 3.0 / 60, 500), ("predict", MIN, 3.0 / 60, 400),
                                ("outcomes", 30_000, 6.0 / 60, 1500)):
        t = np.arange(-(-lo_ms // every) * every, hi_ms, every)
        n = len(t)
        if not n:
            continue
        inrate = np.abs(rng.normal(rate, rate * 0.2, n))
        lag = rng.poisson(rate * 0.3, n).astype("float64") if q == "ingest" else np.full(n, np.nan)
        parts.append(pd.DataFrame({
            "query_name": q, "query_id": f"{q}-id", "run_id": f"{q}-run", "batch_id": t // every,
            "timestamp": t, "num_input_rows": (inrate * every / 1000).astype("int64"),
            "input_rows_per_second": inrate, "processed_rows_per_second": inrate * 5,
            "batch_duration_ms": np.abs(rng.normal(dur, dur * 0.3, n)).astype("int64"),
            "trigger_execution_ms": np.abs(rng.normal(dur, dur * 0.3, n)).astype("int64"),
            "start_offset": None, "end_offset": None, "latest_offset": None,
            "lag": pd.array(np.where(np.isnan(lag), pd.NA, lag), dtype="Int64"),
            "rows_dropped_by_watermark": 0, "progress_json": None}))
    return pd.concat(parts, ignore_index=True)


class Writer:
    """Small delta-rs appends, one commit each."""

    OUTCOME_MS = ("window_start", "target_time", "training_end", "prediction_time", "outcome_time")

    def __init__(self, s: Settings, data: dict, bars):
        from deltalake import DeltaTable

        self.s, self.data, self.bars = s, data, bars
        for t in (tables.BARS, tables.FEATURES, tables.PREDICTIONS, tables.OUTCOMES, tables.MODEL_SCORES,
                  tables.DRIFT, tables.STREAM_PROGRESS):
            DeltaTable.create(t.path(s), schema=t.schema.arrow_type(), mode="ignore")
        self._tables: dict = {}
        self._schemas = {t.name: t.schema.arrow_type() for t in tables.ALL.values()}
        self._names = {k: v.names for k, v in self._schemas.items()}
        self.bars_ms = (bars["window_start"].cast("int64").to_numpy() // 1000)
        f = data["features"]
        self.ref = None
        self.writes = 0
        self._f_ms, self._p_ms, self._o_ms = (f["window_ms"].to_numpy(), data["predictions"]["window_start"].to_numpy(),
                                              data["outcomes"]["target_time"].to_numpy())

    def _append(self, table, arrow) -> None:
        from deltalake import DeltaTable, write_deltalake

        if arrow.num_rows:
            dt = self._tables.get(table.name)
            if dt is None:
                dt = self._tables[table.name] = DeltaTable(table.path(self.s))
            # One append = one commit of one small file, as the jobs' delta-rs appends make them
            # (tickcast.lake.write.rs_append also writes a checksum file, which readers do not need).
            write_deltalake(dt, arrow.select(self._names[table.name]).cast(self._schemas[table.name]), mode="append")
            self.writes += 1

    def span(self, lo: int, hi: int, extras: bool = True) -> None:
        """Append every table's rows of minutes [lo, hi) (outcomes by target time)."""
        sel = (self.bars_ms >= lo) & (self.bars_ms < hi)
        self._append(tables.BARS, self.bars.filter(sel))
        f = self.data["features"][(self._f_ms >= lo) & (self._f_ms < hi)]
        fr = f.rename(columns={"window_ms": "window_start"})
        self._append(tables.FEATURES, _arrow(fr, schemas.FEATURES, ("window_start",)))
        p = self.data["predictions"][(self._p_ms >= lo) & (self._p_ms < hi)]
        self._append(tables.PREDICTIONS, _arrow(p, schemas.PREDICTIONS,
                                                ("window_start", "target_time", "training_end", "prediction_time")))
        o = self.data["outcomes"][(self._o_ms >= lo) & (self._o_ms < hi)]
        self._append(tables.OUTCOMES, _arrow(o, schemas.OUTCOMES, self.OUTCOME_MS))
        self._append(tables.STREAM_PROGRESS, _arrow(progress_rows(lo, hi, lo // MIN), schemas.STREAM_PROGRESS,
                                                    ("timestamp",)))
        if extras:
            self.scores(hi, o)
            self.drift(hi, F)

    def scores(self, hi: int, _o) -> None:
        allo = self.data["outcomes"]
        recent = allo[(self._o_ms > hi - DAY_MS) & (self._o_ms < hi)]
        sc = model_scores(recent, hi - MIN)
        if sc.empty:
            return
        sc.insert(0, "batch_id", hi // MIN)
        sc.insert(0, "computed_at", hi + 30_000)
        self._append(tables.MODEL_SCORES, _arrow(sc, schemas.MODEL_SCORES, ("computed_at",)))

    def drift(self, hi: int, F) -> None:
        from tickcast import drift, model_io  # deferred: heavy (imports mlflow)

        f = self.data["features"]
        live = f[(self._f_ms > hi - DAY_MS) & (self._f_ms < hi) & ~f["warmup"]]
        if self.ref is None:
            X = f[list(F.FEATURES)].to_numpy(float)[:1440]
            self.ref = model_io.reference_distribution(X, list(F.FEATURES))
        if live.empty:
            return
        rows = []
        for h in HORIZONS:
            for d in drift.report(self.ref, {n: live[n].to_numpy(float) for n in F.FEATURES}, self.s.drift_psi_threshold):
                rows.append({"computed_at": hi + 5_000, "batch_id": hi // MIN, "model_name": model_io.model_name(h),
                             "model_version": "1", "window_start": int(live["window_ms"].min()), **d})
        self._append(tables.DRIFT, _arrow(pd.DataFrame(rows), schemas.DRIFT, ("computed_at", "window_start")))


def build(s: Settings, echo=print, minutes: int = WEEK_MINUTES, klines: Path | None = None
          ) -> tuple[Writer, int, str]:
    """Write the data set; returns the writer (for further minutes), the next minute and the origin."""
    now = int(time.time() * 1000) // MIN * MIN
    end = now - 5 * MIN                    # 5 minutes kept back: the appends measured later
    k, origin = week_bars(end + 5 * MIN, minutes, klines)
    bars = bar_table(k)
    t0 = time.monotonic()
    data = derived(bars, end + 5 * MIN - minutes * MIN)
    echo(f"bench dashboard: data set from {origin}: {bars.num_rows:,} bars, {len(data['features']):,} feature rows, "
         f"{len(data['predictions']):,} predictions, {len(data['outcomes']):,} outcomes "
         f"(derived in {time.monotonic() - t0:.1f} s)")
    w = Writer(s, data, bars)
    start = end - minutes * MIN + 5 * MIN
    t0 = time.monotonic()
    live_from = end - LIVE_MINUTES * MIN
    lo, n = start, 0
    while lo < live_from:
        hi = min(lo + CHUNK_MINUTES * MIN, live_from)
        w.span(lo, hi, extras=((lo - start) // (CHUNK_MINUTES * MIN)) % 3 == 0)
        lo, n = hi, n + 1
        if n % 100 == 0:
            echo(f"  {n} appends of {CHUNK_MINUTES} minutes ({time.monotonic() - t0:.0f} s)")
    for m in range(live_from, end, MIN):
        w.span(m, m + MIN, extras=False)
    echo(f"bench dashboard: {w.writes:,} appends written in {time.monotonic() - t0:.0f} s")
    return w, end, origin


# ---------------------------------------------------------------- server side

class Client:
    """Calls a Dash callback through the app's own endpoint, as the browser does."""

    def __init__(self, app):
        self.app, self.http = app, app.server.test_client()
        self.http.get("/")    # builds the callback map

    def key(self, prefix: str) -> str:
        return next(k for k in self.app.callback_map if k.startswith(prefix))

    def call(self, prefix: str, values: dict, changed: str) -> tuple[float, int, dict | None]:
        key = self.key(prefix)
        cb = self.app.callback_map[key]

        def arg(d):
            return {**d, "value": values.get(f"{d['id']}.{d['property']}")}

        outs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in key.strip(".").split("...")]
        body = {"output": key, "outputs": outs if key.startswith("..") else outs[0],
                "inputs": [arg(d) for d in cb["inputs"]], "state": [arg(d) for d in cb["state"]],
                "changedPropIds": [changed]}
        t0 = time.perf_counter()
        r = self.http.post("/_dash-update-component", json=body)
        dt = (time.perf_counter() - t0) * 1000
        if r.status_code not in (200, 204):
            raise RuntimeError(f"{prefix}: HTTP {r.status_code}: {r.data[:300]!r}")
        return dt, r.status_code, (r.get_json() if r.status_code == 200 else None)


# prefix, inputs/states, the input a user changes, the Store holding the versions seen (or None)
CALLBACKS = (
    ("header", "..header-source", {"tick.n_intervals": 1}, None, None),
    ("market", "..market-graph", {"tick.n_intervals": 1, "market-symbol.value": SYMBOLS[0],
                                  "market-range.value": "6h"}, "market-range.value", "market-seen"),
    ("market 1 week", "..market-graph", {"tick.n_intervals": 1, "market-symbol.value": SYMBOLS[0],
                                         "market-range.value": "1w"}, "market-range.value", "market-seen"),
    ("market symbols", "..market-symbol", {"tick.n_intervals": 1}, None, None),
    ("model scores", "..model-rolling-hit", {"tick.n_intervals": 1, "model-horizon.value": 5,
                                             "model-version.value": "1"}, "model-horizon.value", "model-seen"),
    ("model registry", "..model-version", {"tick.n_intervals": 1, "model-horizon.value": 5,
                                           "model-version.value": "1"}, "model-horizon.value", None),
    ("pipeline history", "..pipeline-input-rate", {"tick.n_intervals": 1, "pipeline-span.value": "1d"},
     "pipeline-span.value", "pipeline-seen"),
    ("pipeline quality", "..pipeline-quarantine", {"tick.n_intervals": 1}, None, "pipeline-quality-seen"),
)


def _seen(resp: dict | None, store: str | None):
    if resp is None or store is None:
        return None
    return resp["response"].get(store, {}).get("data")


def server_times(s: Settings, writer: Writer, next_minute: int, echo=print) -> tuple[dict, int]:
    from dashboard.app import create_app  # deferred: heavy (imports deltalake)

    out: dict[str, dict] = {}
    minute = next_minute
    contexts = []

    def fresh(saved: bool = True, **kw):
        app = create_app(s if saved else dataclasses.replace(s, dashboard_cache_dir=""), **kw)
        # Its MLflow read runs in a thread from start-up; done here first, so that the GIL it holds
        # while importing MLflow does not count in the first callback measured.
        context = app.server.config["TICKCAST_CONTEXT"]
        contexts.append(context)
        context.models.get(wait=120)
        context.prefetched.wait(300)
        return Client(app)

    # A running dashboard: it reads what the pages show and saves its caches (for the restarts).
    first = fresh()
    echo(f"bench dashboard: caches saved by a running dashboard: "
         f"{first.app.server.config['TICKCAST_CONTEXT'].lake.save() or 'all, by its saver thread'}")
    for name, prefix, values, user_input, store in CALLBACKS:
        cold_client = fresh(saved=False, prefetch=False)        # a fresh app: empty caches, nothing saved
        cold, _, resp = cold_client.call(prefix, values, user_input or "tick.n_intervals")
        warm = [cold_client.call(prefix, values, user_input or "tick.n_intervals")[0] for _ in range(REPEATS)]
        restart = fresh(prefetch=False).call(prefix, values, user_input or "tick.n_intervals")[0]
        started = fresh().call(prefix, values, user_input or "tick.n_intervals")[0]
        row = {"cold_ms": round(cold, 1), "restart_ms": round(restart, 1), "after_startup_ms": round(started, 1),
               "warm_ms": round(statistics.median(warm), 1)}
        if store:
            seen = _seen(resp, store)
            v = {**values, f"{store}.data": seen}
            same = [cold_client.call(prefix, v, "tick.n_intervals") for _ in range(REPEATS)]
            assert all(code == 204 for _, code, _ in same), f"{name}: an unchanged refresh returned an update"
            row["unchanged_ms"] = round(statistics.median(t for t, _, _ in same), 1)
        out[name] = row
    # One new minute at a time, then the timer refresh of every callback (incremental caches), then
    # the same with a full scan of every table per refresh.
    inc = fresh()
    full = fresh(full_scan=True)
    seen_inc, seen_full = {}, {}
    for c, seen in ((inc, seen_inc), (full, seen_full)):
        for name, prefix, values, user_input, store in CALLBACKS:
            seen[name] = _seen(c.call(prefix, values, user_input or "tick.n_intervals")[2], store)
    after: dict[str, list] = {n: [] for n, *_ in CALLBACKS}
    after_full: dict[str, list] = {n: [] for n, *_ in CALLBACKS}
    for _ in range(REPEATS):
        writer.span(minute, minute + MIN, extras=True)
        minute += MIN
        for c, seen, acc in ((inc, seen_inc, after), (full, seen_full, after_full)):
            for name, prefix, values, user_input, store in CALLBACKS:
                v = {**values, **({f"{store}.data": seen[name]} if store else {})}
                dt, code, resp = c.call(prefix, v, "tick.n_intervals")
                if store and code == 200:
                    seen[name] = _seen(resp, store)
                acc[name].append(dt)
    for name in out:
        out[name]["after_append_ms"] = round(statistics.median(after[name]), 1)
        out[name]["after_append_full_scan_ms"] = round(statistics.median(after_full[name]), 1)
    for context in contexts:
        context.stopped.set()
    return out, minute


# ---------------------------------------------------------------- browser


def browser_times(s: Settings, echo=print) -> dict:
    if not Path(CHROMIUM).exists():
        return {"skipped": f"{CHROMIUM} is absent"}
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = dataclasses.replace(s, dashboard_port=port).child_env()
    proc = subprocess.Popen([sys.executable, "-m", "tickcast.cli", "dashboard", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", 60, proc, "the dashboard",
                  detail=lambda: proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "")
        out = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, graphs in (("/", 1), ("/model", 5), ("/pipeline", 5)):
                runs = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    page.goto(base + path)
                    page.wait_for_function(f"""() => {{
                        const g = [...document.querySelectorAll('.js-plotly-plot')];
                        return g.length >= {graphs} && g.every(x => x._fullData && x._fullData.length > 0
                               || (x.layout && x.layout.annotations && x.layout.annotations.length));
                    }}""", timeout=60_000)
                    runs.append((time.perf_counter() - t0) * 1000)
                render = page.evaluate("""async () => {
                    const out = {};
                    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
                        const t0 = performance.now();
                        await Plotly.newPlot(gd, gd.data, gd.layout);
                        out[gd.parentElement.id || gd.id] = performance.now() - t0;
                    }
                    return out;
                }""")
                out[path] = {"load_to_drawn_ms": round(statistics.median(runs), 1),
                             "render_ms": {k: round(v, 1) for k, v in render.items()}}
            page.goto(base + "/")
            page.wait_for_function("() => document.querySelector('#market-graph .js-plotly-plot')?._fullData?.length > 0")
            switches = {}
            # The time of the first draw whose candle count differs from the range's before the
            # click (refreshes of the same range also fire plotly_afterplot).
            page.evaluate("""() => { const gd = document.querySelector('#market-graph .js-plotly-plot');
                window.__drawn = 0; window.__before = -1;
                gd.on('plotly_afterplot', () => { if (window.__drawn === null
                    && gd._fullData[0].close.length !== window.__before) window.__drawn = performance.now(); }); }""")
            for rng in ("1h", "1d", "1w", "6h"):
                page.evaluate("""() => { const gd = document.querySelector('#market-graph .js-plotly-plot');
                    window.__before = gd._fullData[0].close.length; window.__drawn = null; }""")
                t0 = page.evaluate("performance.now()")
                page.get_by_label({"1h": "1 hour", "6h": "6 hours", "1d": "1 day", "1w": "1 week"}[rng]).check()
                page.wait_for_function("() => window.__drawn !== null", timeout=30_000)
                n = page.evaluate("() => document.querySelector('#market-graph .js-plotly-plot')._fullData[0].x.length")
                switches[rng] = {"click_to_drawn_ms": round(page.evaluate("window.__drawn") - t0, 1), "candles": n}
            out["market range switches"] = switches
            browser.close()
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()



# ---------------------------------------------------------------- entry

def run(settings: Settings, seconds: float | None, out: Path, klines: Path | None = None) -> dict:
    """`tickcast bench dashboard`: build the week, time the callbacks and the pages; print and write JSON.

    `seconds` is not used (the run is a fixed set of measurements, a few minutes in all).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tickcast-bench-dashboard-") as tmp:
        s = dataclasses.replace(settings, lake_uri=str(Path(tmp) / "delta"),
                                checkpoint_uri=str(Path(tmp) / "checkpoints"),
                                dashboard_cache_dir=str(Path(tmp) / "dashboard-cache"),
                                mlflow_uri=f"sqlite:///{Path(tmp) / 'mlflow' / 'mlflow.db'}", horizons=HORIZONS)
        writer, nxt, origin = build(s, klines=klines)
        files = {t.name: _files(t, s) for t in (tables.BARS, tables.FEATURES, tables.PREDICTIONS, tables.OUTCOMES,
                                                 tables.STREAM_PROGRESS)}
        print(f"bench dashboard: files per table: {files}")
        server, nxt = server_times(s, writer, nxt)
        browser = browser_times(s)
    r = {"bench": "dashboard", "data": origin, "symbols": list(SYMBOLS), "minutes": WEEK_MINUTES,
         "append_minutes": CHUNK_MINUTES, "live_minutes": LIVE_MINUTES, "files": files,
         "callbacks": server, "browser": browser, "targets": {"cold_ms": 300, "after_append_ms": 100,
                                                              "market_render_ms": 500}}
    _print(r)
    path = out / "dashboard.json"
    r["json"] = str(path.resolve())
    path.write_text(json.dumps(r, indent=2, default=str) + "\n")
    print(f"\nwritten: {r['json']}")
    return r


def _files(t, s) -> int:
    import pyarrow as pa
    from deltalake import DeltaTable

    return pa.table(DeltaTable(t.path(s)).get_add_actions(flatten=True)).num_rows


def _print(r: dict) -> None:
    print(f"\n{'callback':<20}{'cold':>9}{'restart':>9}{'started':>9}{'warm':>9}{'no change':>11}{'+1 minute':>11}{'full scan':>11}"
          "  (ms, server)")
    for name, v in r["callbacks"].items():
        print(f"{name:<20}{v['cold_ms']:>9.1f}{v['restart_ms']:>9.1f}{v['after_startup_ms']:>9.1f}{v['warm_ms']:>9.1f}"
              f"{v.get('unchanged_ms', float('nan')):>11.1f}"
              f"{v['after_append_ms']:>11.1f}{v['after_append_full_scan_ms']:>11.1f}")
    b = r["browser"]
    if "skipped" in b:
        print(f"\nbrowser: skipped ({b['skipped']})")
        return
    print("\nbrowser (headless Chromium)")
    for path in ("/", "/model", "/pipeline"):
        rend = ", ".join(f"{k} {v:.0f}" for k, v in b[path]["render_ms"].items())
        print(f"  {path:<10} load -> drawn {b[path]['load_to_drawn_ms']:.0f} ms; render per chart (ms): {rend}")
    for rng, v in b["market range switches"].items():
        print(f"  market range {rng}: {v['candles']} candles, click -> drawn {v['click_to_drawn_ms']:.0f} ms")
