"""Small pieces every page uses: message boxes, the no-op refresh test, error containment."""
from __future__ import annotations

import functools
import logging

from dash import ctx, html
from dash.exceptions import PreventUpdate

from dashboard import ids

log = logging.getLogger("tickcast.dashboard")

STYLES = {
    "info": {"background": "#eef5fb", "border": "1px solid #9cc3e5", "color": "#1b4f72"},
    "warn": {"background": "#fff6e0", "border": "1px solid #f0c36d", "color": "#7a5200"},
    "error": {"background": "#fdecea", "border": "1px solid #f5a3a3", "color": "#8a1c1c"},
}


def message(text: str | list, kind: str = "info", **kw) -> html.Div:
    """A visible message in the page (never Dash's error overlay)."""
    return html.Div(text, className=f"tc-message tc-{kind}", role="status",
                    style={**STYLES[kind], "padding": "8px 12px", "margin": "8px 0", "borderRadius": "4px"}, **kw)


def skip_if_unchanged(token, seen) -> None:
    """A timer refresh whose inputs and tables' versions did not change returns no update."""
    if ctx.triggered_id == ids.TICK and seen is not None and list(seen) == list(token):
        raise PreventUpdate


def contained(n_outputs: int, message_index: int):
    """Decorate a callback so that any exception becomes a message in output `message_index` (the
    other outputs unchanged): a bug or a table mid-rewrite shows in the page, never as a 500."""
    from dash import no_update

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except PreventUpdate:
                raise
            except Exception as e:
                log.exception("callback %s failed", fn.__name__)
                out = [no_update] * n_outputs
                out[message_index] = message(f"Could not draw this page: {type(e).__name__}: {e}", "error")
                return tuple(out)
        return wrapper
    return deco


def empty_figure(text: str, uirevision: str = "empty") -> dict:
    """A blank chart carrying a short note (the page's message says more)."""
    return {"data": [], "layout": {"uirevision": uirevision, "height": 240, "xaxis": {"visible": False},
                                   "yaxis": {"visible": False},
                                   "annotations": [{"text": text, "showarrow": False, "xref": "paper", "yref": "paper",
                                                    "x": 0.5, "y": 0.5, "font": {"size": 14, "color": "#777"}}]}}
