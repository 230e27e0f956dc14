"""Market page (/): 1-minute candles and volume of one symbol with the model's P(up) per horizon."""
from __future__ import annotations

import dash
import pandas as pd
import pyarrow.compute as pc
from dash import Input, Output, State, dcc, html, no_update

from dashboard import figures, ids
from dashboard.components import contained, empty_figure, message, skip_if_unchanged
from tickcast.timeunits import DAY_MS, MINUTE_MS

RANGE_LABELS = {"1h": "1 hour", "6h": "6 hours", "1d": "1 day", "1w": "1 week"}
SYMBOLS_SPAN_MS = DAY_MS     # the picker lists the symbols with a bar in the newest day


def layout(**_query):
    return html.Div([
        html.Div([
            html.Label("Symbol", htmlFor=ids.SYMBOL, style={"marginRight": "6px"}),
            dcc.Dropdown(id=ids.SYMBOL, clearable=False, style={"width": "260px", "display": "inline-block",
                                                                   "verticalAlign": "middle"}),
            dcc.RadioItems(id=ids.RANGE, value="6h", inline=True,
                           options=[{"label": v, "value": k} for k, v in RANGE_LABELS.items()],
                           style={"display": "inline-block", "marginLeft": "24px"},
                           inputStyle={"marginLeft": "12px", "marginRight": "4px"}),
        ]),
        html.Div(id=ids.MARKET_MESSAGE),
        dcc.Graph(id=ids.MARKET_GRAPH, figure=empty_figure("loading…"), config={"displaylogo": False}),
        dcc.Store(id=ids.MARKET_SEEN),
    ])


dash.register_page(__name__, path="/", name="Market", title="tickcast · market", layout=layout)


def register_callbacks(app, context) -> None:
    lake = context.lake

    @app.callback(Output(ids.SYMBOL, "options"), Output(ids.SYMBOL, "value"),
                  Input(ids.TICK, "n_intervals"), State(ids.SYMBOL, "value"), State(ids.SYMBOL, "options"))
    def symbols(_n, current, options):
        lake.refresh("bars", span_ms=SYMBOLS_SPAN_MS)
        syms = lake["bars"].unique("symbol")
        opts = [{"label": x, "value": x} for x in syms]
        value = current if current in syms else (syms[0] if syms else None)
        if options == opts and value == current:
            return no_update, no_update
        return opts, value

    @app.callback(Output(ids.MARKET_GRAPH, "figure"), Output(ids.MARKET_MESSAGE, "children"),
                  Output(ids.MARKET_SEEN, "data"),
                  Input(ids.TICK, "n_intervals"), Input(ids.SYMBOL, "value"), Input(ids.RANGE, "value"),
                  State(ids.MARKET_SEEN, "data"))
    @contained(3, 1)
    def market(_n, symbol, rng, seen):
        # Outcomes are timed by target_time (window start + horizon): an hour more covers every horizon.
        versions = lake.refresh("bars", "predictions", "outcomes",
                                span_ms=(figures.RANGES[rng or "6h"] + 60) * MINUTE_MS)
        token = [list(versions), symbol, rng]
        skip_if_unchanged(token, seen)
        return (*draw(lake, symbol, rng or "6h"), token)


def draw(lake, symbol: str | None, rng: str):
    """(figure, message) for a symbol and range; the range ends at the table's newest bar."""
    bars = lake["bars"]
    if bars.version is None or bars.data is None or bars.data.num_rows == 0:
        why = f" ({bars.error})" if bars.error else ""
        return empty_figure("no bars yet"), message(
            "No bars yet: silver.bars_1m is empty or does not exist (a fresh install). Start the pipeline with "
            "`tickcast up`, or load history with `tickcast backfill --klines FILE`" + why + ".", "info")
    syms = bars.unique("symbol")
    if symbol not in syms:
        symbol = syms[0]
    end = bars.max("window_start")
    minutes = figures.RANGES[rng]
    lo = end - pd.Timedelta(minutes=minutes)
    sel = (pc.field("symbol") == symbol) & (pc.field("window_start") > lo) & (pc.field("window_start") <= end)
    b = bars.rows(sel, ["window_start", "open", "high", "low", "close", "volume"])
    if b.empty:
        last = bars.max("window_start", pc.field("symbol") == symbol)
        newest = f"{last:%Y-%m-%d %H:%M} UTC" if last is not None else f"older than {lo:%Y-%m-%d %H:%M} UTC"
        return empty_figure(f"no bars for {symbol} in this range", f"{symbol}|{rng}"), message(
            f"No bars for {symbol} in the {RANGE_LABELS[rng]} up to {end:%Y-%m-%d %H:%M} UTC (the newest bar of "
            f"any symbol); {symbol}'s newest bar is {newest}.", "warn")
    width = figures.candle_minutes(minutes)
    candles = figures.resample(b, width)
    pcols = ["window_start", "horizon", "model_version", "prob_up", "prediction_time"]
    preds = lake["predictions"].rows(sel, pcols)
    outs = lake["outcomes"].rows(sel, ["window_start", "horizon", "model_version", "hit"])
    points = figures.prediction_points(preds, outs, width)
    fig = figures.market_figure(candles, points, symbol, width, f"{symbol}|{rng}")
    notes = []
    if preds.empty:
        notes.append(message(f"No predictions for {symbol} in this range (gold.predictions): is the predict job "
                             "running, and does a horizon have a champion? See the Model page.", "info"))
    return fig, notes
