"""Model page (/model): the model against reality and the naive baselines, per horizon and version."""
from __future__ import annotations

import dash
import pyarrow.compute as pc
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import figures, ids
from dashboard.components import contained, empty_figure, message, skip_if_unchanged
from tickcast import model_io

ROLLING = "60min"


def layout(**_query):
    graph = lambda i: dcc.Graph(id=i, figure=empty_figure("loading…"), config={"displaylogo": False})  # noqa: E731
    half = {"width": "50%", "display": "inline-block", "verticalAlign": "top"}
    return html.Div([
        html.Div([
            html.Label("Horizon", htmlFor=ids.HORIZON, style={"marginRight": "6px"}),
            dcc.Dropdown(id=ids.HORIZON, clearable=False, style={"width": "160px", "display": "inline-block",
                                                                   "verticalAlign": "middle"}),
            html.Label("Model version", htmlFor=ids.VERSION, style={"margin": "0 6px 0 24px"}),
            dcc.Dropdown(id=ids.VERSION, clearable=False, style={"width": "260px", "display": "inline-block",
                                                                   "verticalAlign": "middle"}),
        ]),
        html.Div(id=ids.MODEL_BANNER),
        html.Div(id=ids.MODEL_MESSAGE),
        html.Div([html.Div(graph(ids.ROLLING_HIT), style=half), html.Div(graph(ids.ROLLING_BRIER), style=half)]),
        html.Div([html.Div(graph(ids.CUMULATIVE), style=half), html.Div(graph(ids.CALIBRATION), style=half)]),
        graph(ids.DRIFT),
        html.H3("Lifecycle: promotions, refusals, demotions, retrains (ops.model_events)", style={"fontSize": "16px"}),
        html.Div(id=ids.MODEL_EVENTS),
        html.H3("Registered versions", style={"fontSize": "16px"}),
        html.Div(id=ids.MODEL_VERSIONS),
        html.H3("Walk-forward report of the selected version", style={"fontSize": "16px"}),
        dcc.Markdown(id=ids.MODEL_REPORT),
        dcc.Store(id=ids.MODEL_SEEN), dcc.Store(id=ids.MODEL_REGISTRY_SEEN), dcc.Store(id=ids.MODEL_HORIZON_AUTO),
    ])


dash.register_page(__name__, path="/model", name="Model", title="tickcast · model", layout=layout)


def _versions_table(info) -> html.Table:
    head = html.Tr([html.Th(c, style={"textAlign": "left", "paddingRight": "14px"}) for c in
                    ("version", "family", "aliases", "walk-forward Brier", "accuracy", "training end", "gate",
                     "reason")])
    rows = [html.Tr([html.Td(f"v{v['version']}"), html.Td(v.get("family") or "–"), html.Td(", ".join(v["aliases"]) or "–"),
                     html.Td(v.get("brier") or "–"), html.Td(v.get("accuracy") or "–"),
                     html.Td(v.get("training_end") or "–"), html.Td(v.get("gate") or "–"),
                     html.Td(v.get("gate_reason") or "", style={"fontSize": "12px", "maxWidth": "640px"})],
                    style={"fontWeight": 700} if model_io.CHAMPION in v["aliases"] else {})
            for v in info.versions]
    return html.Table([head, *rows], style={"borderCollapse": "collapse", "fontSize": "13px"})


def pick_horizon(horizons: list[int], with_data: set[int], current, auto):
    """The horizon the selector shows: the user's choice; else (first load, or still on the one picked
    for them) the first horizon with a champion or outcomes, so the page opens where the data is."""
    if current in horizons and current != auto:
        return current                      # chosen by the user: kept
    if current in horizons and current in with_data:
        return current
    having = [h for h in horizons if h in with_data]
    return having[0] if having else (current if current in horizons else horizons[0])


def _events_table(cache, horizon: int, limit: int = 10):
    if cache.data is None or not cache.data.num_rows:
        return message("No model events yet: every training, retrain, demotion and manual move is logged here.",
                       "info")
    df = cache.rows(pc.field("horizon") == horizon)
    if df.empty:
        return message(f"No model events for the {horizon}-minute model yet.", "info")
    df = df.sort_values("event_time", ascending=False).head(limit)
    head = html.Tr([html.Th(c, style={"textAlign": "left", "paddingRight": "14px"})
                    for c in ("time (UTC)", "event", "version", "reason", "by")])
    bad = {"demotion", "expiry", "failed_retrain", "abandoned"}
    rows = [html.Tr([html.Td(f"{r.event_time:%Y-%m-%d %H:%M}"), html.Td(r.event),
                     html.Td(f"v{r.model_version}" if isinstance(r.model_version, str) else "–"),
                     html.Td(r.reason, style={"fontSize": "12px", "maxWidth": "720px"}), html.Td(r.source)],
                    style={"color": "#b00020"} if r.event in bad else {})
            for r in df.itertuples()]
    return html.Table([head, *rows], style={"borderCollapse": "collapse", "fontSize": "13px"})


def register_callbacks(app, context) -> None:
    lake, s = context.lake, context.settings

    @app.callback(Output(ids.HORIZON, "options"), Output(ids.HORIZON, "value"), Output(ids.MODEL_HORIZON_AUTO, "data"),
                  Input(ids.TICK, "n_intervals"), State(ids.HORIZON, "value"), State(ids.HORIZON, "options"),
                  State(ids.MODEL_HORIZON_AUTO, "data"))
    def horizons(_n, current, options, auto):
        lake.refresh("outcomes")
        with_outcomes = {int(h) for h in lake["outcomes"].unique("horizon")}
        info_all, _ = context.models.get(wait=0)
        with_champion = {h for h, i in (info_all or {}).items() if i.champion is not None}
        hs = sorted(set(s.horizons) | with_outcomes)
        opts = [{"label": f"{h} min", "value": h} for h in hs]
        value = pick_horizon(hs, with_champion | with_outcomes, current, auto)
        return ((no_update if opts == options else opts), (no_update if value == current else value),
                value if current is None or current == auto else no_update)

    @app.callback(Output(ids.MODEL_EVENTS, "children"), Input(ids.TICK, "n_intervals"), Input(ids.HORIZON, "value"))
    def lifecycle(_n, horizon):
        if horizon is None:
            raise PreventUpdate
        lake.refresh("model_events")
        return _events_table(lake["model_events"], int(horizon))

    @app.callback(Output(ids.VERSION, "options"), Output(ids.VERSION, "value"), Output(ids.MODEL_BANNER, "children"),
                  Output(ids.MODEL_VERSIONS, "children"), Output(ids.MODEL_REPORT, "children"),
                  Output(ids.MODEL_REGISTRY_SEEN, "data"),
                  Input(ids.TICK, "n_intervals"), Input(ids.HORIZON, "value"), Input(ids.VERSION, "value"),
                  State(ids.VERSION, "options"), State(ids.MODEL_REGISTRY_SEEN, "data"))
    @contained(6, 2)
    def registry(_n, horizon, current, options, seen):
        if horizon is None:
            raise PreventUpdate
        versions_seen = lake.refresh("outcomes")
        info_all, err = context.models.get()
        token = [list(versions_seen), context.models.loaded_at, err, horizon, current]
        skip_if_unchanged(token, seen)
        return (*_registry(lake, horizon, current, options, info_all, err), token)

    @app.callback(Output(ids.ROLLING_HIT, "figure"), Output(ids.ROLLING_BRIER, "figure"),
                  Output(ids.CUMULATIVE, "figure"), Output(ids.CALIBRATION, "figure"), Output(ids.DRIFT, "figure"),
                  Output(ids.MODEL_MESSAGE, "children"), Output(ids.MODEL_SEEN, "data"),
                  Input(ids.TICK, "n_intervals"), Input(ids.HORIZON, "value"), Input(ids.VERSION, "value"),
                  State(ids.MODEL_SEEN, "data"))
    @contained(7, 5)
    def scores(_n, horizon, version, seen):
        versions = lake.refresh("outcomes", "scores", "drift")
        token = [list(versions), horizon, version]
        skip_if_unchanged(token, seen)
        return (*draw(lake, s, horizon, version), token)


def draw(lake, s, horizon, version):
    """The five figures and a message for one horizon and model version."""
    blank = empty_figure("no outcomes yet")
    if horizon is None or version is None or lake["outcomes"].data is None:
        return blank, blank, blank, blank, empty_figure("no drift yet"), message(
            "No outcomes yet: gold.outcomes fills as predictions' target bars arrive (the outcomes job).", "info")
    ui = f"{horizon}|{version}"
    every = lake["outcomes"].rows((pc.field("horizon") == int(horizon)) & (pc.field("model_version") == str(version)))
    o, notes = figures.counted(every), []
    if o.empty and not every.empty:
        after = figures.out_of_sample(every)
        if after.empty:
            notes.append(message(f"Every outcome of the {horizon}-minute model v{version} falls inside its training "
                                 "data: nothing to score out of sample yet.", "warn"))
        else:
            notes.append(message(f"No prediction of v{version} was made before its outcome (a replay or a backfill "
                                 "scored after the fact), so gold.model_scores counts none. Shown instead: its "
                                 f"{len(after):,} predictions after its training end, scored after the fact.", "warn"))
        o = after
    if o.empty:
        if every.empty:
            notes.append(message(f"No outcomes yet for the {horizon}-minute model v{version}: gold.outcomes fills as "
                                 "its predictions' target bars arrive.", "info"))
        figs = [blank] * 4
    else:
        sc = lake["scores"].rows((pc.field("horizon") == int(horizon)) & (pc.field("model_version") == str(version))
                                 & (pc.field("symbol") == "*") & (pc.field("window") == "1h"))
        r = figures.rolling_scores(o, ROLLING)
        n = len(o)
        figs = [
            figures.rolling_figure(r, "hit", f"Rolling 1 h hit rate, {horizon} min, v{version} (n={n:,})", ui, sc),
            figures.rolling_figure(r, "brier", f"Rolling 1 h Brier score, {horizon} min, v{version}", ui, sc),
            figures.cumulative_figure(figures.cumulative_hits(o), "Cumulative hit rate vs the baselines", ui),
            figures.calibration_figure(figures.calibration(o), "Calibration (reliability)", ui),
        ]
    drift = lake["drift"]
    name = model_io.model_name(int(horizon))
    d = figures.latest_drift(drift.rows((pc.field("model_name") == name) & (pc.field("model_version") == str(version)))
                             if drift.data is not None else drift.frame(), str(version))
    if d.empty:
        dfig = empty_figure("no drift rows for this version yet")
    else:
        flagged = int((d["psi"] > s.drift_psi_threshold).sum())
        dfig = figures.drift_figure(d, s.drift_psi_threshold,
                                    f"Feature drift at {d['computed_at'].max():%Y-%m-%d %H:%M} UTC: {flagged} of "
                                    f"{len(d)} features above PSI {s.drift_psi_threshold:g}", ui)
    return (*figs, dfig, notes)


def _registry(lake, horizon, current, options, info_all, err):
    """Version choices, the champion banner, the versions table and the selected version's report."""
    scored = lake["outcomes"].unique("model_version") if lake["outcomes"].data is not None else []
    scored = sorted({v for v in lake["outcomes"].rows(pc.field("horizon") == int(horizon),
                                                      ["model_version"])["model_version"]}) if scored else []
    info = (info_all or {}).get(int(horizon))
    name = model_io.model_name(int(horizon))
    banner, table, report = [], "", ""
    registered = [v["version"] for v in info.versions] if info else []
    if info_all is None:
        banner.append(message(f"Model metadata unavailable: {err or 'MLflow is loading'}. The charts below "
                              "come from the Delta tables and still work.", "warn"))
    elif info is None or not info.versions:
        banner.append(message(f"No champion for {name}: no version is registered. Train one with "
                              f"`tickcast train --horizon {horizon}`.", "error"))
    elif info.champion is None:
        why = "; ".join(f"v{v['version']} ({', '.join(v['aliases']) or 'no alias'}): "
                        f"{v.get('gate_reason') or v.get('gate') or 'no gate result'}" for v in info.versions[:3])
        banner.append(message(f"No champion for {name}: no version passed the gate. {why}", "error"))
    else:
        champ = next(v for v in info.versions if v["version"] == info.champion)
        banner.append(message(f"Champion of {name}: v{info.champion}. {champ.get('champion_reason') or ''}",
                              "info"))
    if info is not None and info.versions:
        table = _versions_table(info)
    versions = sorted(set(scored) | set(registered), key=lambda v: int(v) if str(v).isdigit() else 0,
                      reverse=True)
    opts = [{"label": f"v{v}" + (" (champion)" if info and v == info.champion else "")
             + ("" if v in scored else " – no outcomes yet"), "value": v} for v in versions]
    value = current if current in versions else (info.champion if info and info.champion in versions
                                                 else (versions[0] if versions else None))
    if info is not None and value is not None:
        v = next((x for x in info.versions if x["version"] == value), None)
        report = (v or {}).get("report_md") or "(no walk-forward report for this version)"
    return (no_update if opts == options else opts), (no_update if value == current else value), banner, table, \
        report

