"""Pipeline page (/pipeline): every streaming query's history, freshness per stage, data quality."""
from __future__ import annotations

import dash
import pandas as pd
import pyarrow.compute as pc
from dash import Input, Output, State, dcc, html

from dashboard import figures, ids
from dashboard.components import contained, empty_figure, message, skip_if_unchanged
from dashboard.data import NEWEST
from tickcast.timeunits import DAY_MS, MINUTE_MS

SPANS = {"1h": "1 hour", "6h": "6 hours", "1d": "1 day", "1w": "1 week"}
EXAMPLES = 3          # rejected raw records shown per quarantine reason
RAW_CHARS = 160


def layout(**_query):
    graph = lambda i: dcc.Graph(id=i, figure=empty_figure("loading…"), config={"displaylogo": False})  # noqa: E731
    half = {"width": "50%", "display": "inline-block", "verticalAlign": "top"}
    return html.Div([
        dcc.RadioItems(id=ids.SPAN, value="1h", inline=True,
                       options=[{"label": v, "value": k} for k, v in SPANS.items()],
                       inputStyle={"marginLeft": "12px", "marginRight": "4px"}),
        html.Div(id=ids.PIPELINE_MESSAGE),
        html.Div([html.Div(graph(ids.INPUT_RATE), style=half), html.Div(graph(ids.BATCH_DURATION), style=half)]),
        html.Div([html.Div(graph(ids.LAG_MESSAGES), style=half), html.Div(graph(ids.LAG_SECONDS), style=half)]),
        graph(ids.FRESHNESS),
        html.H3("Quarantine", style={"fontSize": "16px"}),
        html.Div(id=ids.QUARANTINE),
        html.H3("Gaps and late data", style={"fontSize": "16px"}),
        html.Div(id=ids.QUALITY),
        dcc.Store(id=ids.PIPELINE_SEEN), dcc.Store(id=ids.QUALITY_SEEN),
    ])


dash.register_page(__name__, path="/pipeline", name="Pipeline", title="tickcast · pipeline", layout=layout)


def register_callbacks(app, context) -> None:
    lake = context.lake

    @app.callback(Output(ids.INPUT_RATE, "figure"), Output(ids.BATCH_DURATION, "figure"),
                  Output(ids.LAG_MESSAGES, "figure"), Output(ids.LAG_SECONDS, "figure"),
                  Output(ids.FRESHNESS, "figure"), Output(ids.PIPELINE_MESSAGE, "children"),
                  Output(ids.PIPELINE_SEEN, "data"),
                  Input(ids.TICK, "n_intervals"), Input(ids.SPAN, "value"), State(ids.PIPELINE_SEEN, "data"))
    @contained(7, 5)
    def history(_n, span, seen):
        versions = (*lake.refresh("progress", span_ms=figures.RANGES[span or "1h"] * MINUTE_MS),
                    *lake.refresh("bars", "features", "predictions", span_ms=NEWEST))   # freshness: file metadata
        token = [list(versions), span]
        skip_if_unchanged(token, seen)
        return (*draw_history(context, span or "1h"), token)

    @app.callback(Output(ids.QUARANTINE, "children"), Output(ids.QUALITY, "children"),
                  Output(ids.QUALITY_SEEN, "data"),
                  Input(ids.TICK, "n_intervals"), State(ids.QUALITY_SEEN, "data"))
    @contained(3, 1)
    def quality(_n, seen):
        versions = (*lake.refresh("quarantine", "late_bars"),
                    *lake.refresh("gapfill", "bars", "progress", span_ms=DAY_MS))
        token = [list(versions)]
        skip_if_unchanged(token, seen)
        return (quarantine_panel(lake), quality_panel(lake), token)


def draw_history(context, span: str):
    lake, s = context.lake, context.settings
    minutes = figures.RANGES[span]
    prog = lake["progress"]
    notes = []
    ui = f"pipeline|{span}"
    if prog.data is None or prog.data.num_rows == 0:
        notes.append(message("No streaming progress yet: ops.stream_progress fills while the jobs run "
                             "(`tickcast up`, or `tickcast job NAME`).", "info"))
        blank = empty_figure("no progress rows yet")
        figs = [blank] * 4
    else:
        end = prog.max("timestamp")
        p = figures.progress_series(prog.rows(pc.field("timestamp") > end - pd.Timedelta(minutes=minutes)))
        title = f"over the {SPANS[span]} up to {end:%Y-%m-%d %H:%M:%S} UTC"
        figs = [
            figures.history_figure(p, "input_rows_per_second", f"Input rate {title}", "rows/s", ui),
            figures.history_figure(p, "batch_seconds", "Batch duration", "seconds", ui, s.alert_batch_seconds),
            figures.history_figure(p[p["lag"].notna()], "lag", "Kafka lag (messages behind the latest offsets)",
                                   "messages", ui),
            figures.history_figure(p[p["lag_seconds"].notna()], "lag_seconds",
                                   "Kafka lag in seconds (messages behind ÷ input rate)", "seconds", ui,
                                   s.alert_lag_seconds),
        ]
    f = context.freshness()
    if not f.empty:
        f = f[f["minute"] > f["minute"].max() - pd.Timedelta(minutes=minutes)]
    if f.empty:
        ffig = empty_figure("no one-minute commits yet (freshness is measured on live minutes)", ui)
    else:
        ffig = figures.freshness_figure(f, s.alert_freshness_seconds, ui)
    return (*figs, ffig, notes)


def quarantine_panel(lake):
    q = lake["quarantine"]
    if q.data is None or q.data.num_rows == 0:
        return message("No quarantined records" + (" (bronze.quarantine does not exist yet)." if q.version is None
                                                   else "."), "info")
    df = q.frame()
    counts = df.groupby("reason").size().sort_values(ascending=False)
    rows = []
    for reason, n in counts.items():
        ex = df[df["reason"] == reason].sort_values("ingest_time").tail(EXAMPLES)
        samples = [html.Code(_raw(v), style={"display": "block", "fontSize": "12px", "whiteSpace": "pre-wrap"})
                   for v in ex["raw_value"]]
        rows.append(html.Tr([html.Td(reason, style={"paddingRight": "14px"}), html.Td(f"{n:,}"), html.Td(samples)]))
    head = html.Tr([html.Th("reason", style={"textAlign": "left"}), html.Th("records"),
                    html.Th(f"latest {EXAMPLES} raw records", style={"textAlign": "left"})])
    return html.Table([head, *rows], style={"fontSize": "13px"})


def _raw(v) -> str:
    if v is None:
        return "(no value)"
    b = bytes(v)
    text = b[:RAW_CHARS].decode("utf-8", errors="replace")
    return text + (f"… ({len(b):,} bytes)" if len(b) > RAW_CHARS else "")


def _last_day(cache, col: str):
    """Rows of the newest 24 hours of a cache (it may hold more, read for another page)."""
    end = cache.max(col)
    return pc.field(col) >= end - pd.Timedelta(milliseconds=DAY_MS)


def quality_panel(lake):
    """Gap fills, incomplete bars and late trades over the newest 24 hours; late bars ever."""
    items = []
    g = lake["gapfill"]
    if g.version is None:
        items.append(html.Li("Gap-filled trades: bronze.ticks does not exist yet."))
    else:
        gf = g.rows(_last_day(g, "trade_time")) if g.data is not None and g.data.num_rows else g.frame()
        per = ", ".join(f"{k} {v:,}" for k, v in gf.groupby("symbol").size().items()) if len(gf) else "none"
        items.append(html.Li(f"Gap-filled trades in the newest 24 hours (fetched over REST after a reconnect or "
                             f"a missed id): {per}."))
    b = lake["bars"]
    if b.data is not None and b.data.num_rows:
        inc = b.rows(pc.invert(pc.field("is_complete")) & _last_day(b, "window_start"), ["symbol", "window_start"])
        per = ", ".join(f"{k} {v:,}" for k, v in inc.groupby("symbol").size().items()) if len(inc) else "none"
        items.append(html.Li(f"Incomplete bars in the newest 24 hours (a gap in trade ids: a reconnect, lost "
                             f"trades, or a stream's first minute): {per}."))
    lb = lake["late_bars"]
    if lb.version is None:
        items.append(html.Li("Late bars: ops.late_bars does not exist yet."))
    else:
        lf = lb.frame()
        per = ", ".join(f"{q}/{sym} {n:,}" for (q, sym), n in lf.groupby(["query_name", "symbol"]).size().items()) \
            if len(lf) else "none"
        items.append(html.Li(f"Late bars (older than their symbol's feature state, ops.late_bars): {per}."))
    p = lake["progress"]
    if p.data is not None and p.data.num_rows:
        dropped = p.data.filter(_last_day(p, "timestamp")).group_by("query_name").aggregate([("rows_dropped_by_watermark", "sum")]).to_pylist()
        per = ", ".join(f"{d['query_name']} {int(d['rows_dropped_by_watermark_sum']):,}" for d in
                        sorted(dropped, key=lambda d: d["query_name"]) if d["rows_dropped_by_watermark_sum"]) or "none"
        items.append(html.Li(f"Late trades left out by the watermark (ops.stream_progress, newest 24 hours): {per}."))
    items.append(html.Li("Reconnects are not a table: they show here as gap-filled trades and incomplete bars.",
                         style={"color": "#777"}))
    return html.Ul(items, style={"fontSize": "14px"})
