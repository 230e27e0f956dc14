"""Backtest page (/backtest): a `tickcast backtest` run from gold.backtest, period by period: the served
model's accuracy against the baselines, the served versions, and the strategy's cumulative return after fees."""
from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html, no_update

from dashboard import figures_backtest as fb
from dashboard import ids
from dashboard.components import contained, empty_figure, message, skip_if_unchanged
from tickcast import lake as rs
from tickcast import tables

COLUMNS = ("period", "start", "gate", "served", "accuracy", "climatology", "momentum", "strategy", "buy-and-hold",
           "reason")


def layout(**_query):
    graph = lambda i: dcc.Graph(id=i, figure=empty_figure("loading…"), config={"displaylogo": False})  # noqa: E731
    return html.Div([
        html.Div([html.Label("Backtest run", htmlFor=ids.BACKTEST_RUN, style={"marginRight": "6px"}),
                  dcc.Dropdown(id=ids.BACKTEST_RUN, clearable=False,
                               style={"width": "760px", "display": "inline-block", "verticalAlign": "middle"})]),
        html.Div(id=ids.BACKTEST_MESSAGE),
        graph(ids.BACKTEST_ACCURACY),
        graph(ids.BACKTEST_RETURN),
        html.H3("Periods", style={"fontSize": "16px"}),
        html.Div(id=ids.BACKTEST_PERIODS),
        dcc.Store(id=ids.BACKTEST_SEEN),
    ])


dash.register_page(__name__, path="/backtest", name="Backtest", title="tickcast · backtest", layout=layout)


class Reader:
    """gold.backtest, read again only when its Delta version changes (a handful of rows per run)."""

    def __init__(self, s):
        self.s = s
        self.version, self.frame = None, None

    def read(self):
        import pandas as pd
        from deltalake import DeltaTable

        if not rs.exists(tables.BACKTEST, self.s):
            return None, None
        dt = DeltaTable(rs.uri(tables.BACKTEST, self.s))
        if dt.version() != self.version:
            df = dt.to_pyarrow_table().to_pandas()
            for c in ("period_start", "period_end", "computed_at"):
                df[c] = pd.to_datetime(df[c], utc=True)
            self.version, self.frame = dt.version(), df
        return self.version, self.frame


def _table(r) -> html.Table:
    head = html.Tr([html.Th(c, style={"textAlign": "left", "paddingRight": "12px"}) for c in COLUMNS])
    body = [html.Tr([html.Td(str(row[c]), style={"fontSize": "12px", "maxWidth": "520px"} if c == "reason" else {})
                     for c in COLUMNS]) for row in fb.period_rows(r)]
    return html.Table([head, *body], style={"borderCollapse": "collapse", "fontSize": "13px"})


def register_callbacks(app, context) -> None:
    reader = Reader(context.settings)

    @app.callback(Output(ids.BACKTEST_RUN, "options"), Output(ids.BACKTEST_RUN, "value"),
                  Output(ids.BACKTEST_ACCURACY, "figure"), Output(ids.BACKTEST_RETURN, "figure"),
                  Output(ids.BACKTEST_PERIODS, "children"), Output(ids.BACKTEST_MESSAGE, "children"),
                  Output(ids.BACKTEST_SEEN, "data"),
                  Input(ids.TICK, "n_intervals"), Input(ids.BACKTEST_RUN, "value"),
                  State(ids.BACKTEST_RUN, "options"), State(ids.BACKTEST_SEEN, "data"))
    @contained(7, 5)
    def draw(_n, current, options, seen):
        version, df = reader.read()
        token = [version, current]
        skip_if_unchanged(token, seen)
        if df is None or df.empty:
            blank = empty_figure("no backtest yet")
            return [], None, blank, blank, "", message(
                "No backtest yet: `tickcast backtest --horizon 5` writes its periods to gold.backtest "
                "(docs/training.md).", "info"), token
        runs = fb.runs(df)
        opts = [{"label": r["label"], "value": r["run_id"]} for r in runs]
        value = current if current in {r["run_id"] for r in runs} else runs[0]["run_id"]
        r = fb.one_run(df, value)
        h = int(r["horizon"].iloc[0])
        served = int(r["served_version"].notna().sum())
        note = message(f"{len(r)} periods, {served} served a model (a refused retrain leaves the champion serving; "
                       "with no champion nothing is served). Intervals are 95% block-bootstrap intervals.", "info")
        return ((no_update if opts == options else opts), (no_update if value == current else value),
                fb.accuracy_figure(r, f"Accuracy per period, {h} min: served model vs the naive baselines", value),
                fb.cumulative_figure(r, f"Long/flat strategy after {r['fee_bps'].iloc[0]:g} bps fees vs "
                                        "buy-and-hold", value),
                _table(r), note, token)
