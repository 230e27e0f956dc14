"""What the prediction routes share: the champion for a horizon, API keys, rows -> outputs, and
the hot path's validation and JSON (the per-request cost, docs/serving.md)."""
from __future__ import annotations

import functools
import hmac
import json
import typing

import numpy as np
from flask import Response, current_app, request
from pydantic import ValidationError

from serving.models import Served


def json_response(obj, status: int = 200, headers=None) -> Response:
    """`obj` as strict JSON (never NaN: `allow_nan=False` raises instead), without Flask's JSON
    provider machinery (sorted keys, the app lookups): ~15 µs less per answer."""
    return Response(json.dumps(obj, allow_nan=False, separators=(",", ":")) + "\n", status,
                    headers=headers, mimetype="application/json")


def error(status: int, message: str, **extra) -> Response:
    return json_response({"error": message, **extra}, status)


def _where(loc) -> str:
    """('rows', 0, 'ret_1') -> 'rows[0].ret_1'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_error(e: ValidationError) -> Response:
    """422 naming each bad field and why, without its value (a NaN echoed back is invalid JSON)."""
    errs = e.errors(include_input=False, include_url=False, include_context=False)
    fields = [_where(x["loc"]) for x in errs]
    msgs = [f"{f}: {x['msg']}" for f, x in zip(fields, errs)]
    if len(msgs) > 10:
        msgs = msgs[:10] + [f"... {len(msgs) - 10} more"]
    return error(422, "; ".join(msgs), fields=list(dict.fromkeys(fields))[:50])


def validated(func):
    """Validate a route's `path` and JSON `body` here instead of in flask-openapi3, which documents
    them all the same (`__delay_validate_request__`): pydantic parses the body bytes in Rust
    (`model_validate_json`, ~4 µs for a one-row body) where `get_json` + `model_validate` took ~20 µs.
    Same rules: strict types, no NaN/Infinity (literals or strings), a non-JSON body is a 422."""
    hints = typing.get_type_hints(func)
    path_model, body_model = hints.get("path"), hints.get("body")

    @functools.wraps(func)
    def view(**kwargs):
        args = {}
        try:
            if path_model is not None:
                args["path"] = path_model.model_validate(kwargs)
            if body_model is not None:
                req = request._get_current_object()
                args["body"] = body_model.model_validate_json(req.get_data(cache=False)) if req.is_json \
                    else body_model.model_validate(None)
        except ValidationError as e:
            return validation_error(e)
        return func(**args)

    view.__delay_validate_request__ = True
    return view


class Refused(Exception):
    """A request answered with a 4xx/503 JSON error."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra

    def response(self):
        return error(self.status, self.message, **self.extra)


def service():
    return current_app.extensions["tickcast"]


def check_api_key(svc=None) -> None:
    keys = (svc or service()).settings.serve_api_keys
    if not keys:
        return
    given = request.headers.get("X-API-Key", "")
    if not any(hmac.compare_digest(given.encode(), k.encode()) for k in keys):
        raise Refused(401, "missing or unknown API key (header X-API-Key)")


def champion(horizon: int, svc=None) -> Served:
    svc = svc or service()
    snap = svc.models.get()
    served = snap.served.get(horizon)
    if served is not None:
        return served
    if horizon in snap.errors:
        raise Refused(503, snap.errors[horizon], horizon=horizon)
    known = snap.horizons()
    if snap.state is None:
        why = svc.models.sync_error or "the model registry has not been read yet"
        raise Refused(503, f"no model loaded: {why}", horizon=horizon)
    raise Refused(404, f"unknown horizon {horizon}: models exist for horizons {known or 'none'}",
                  fields=["horizon"], horizon=horizon)


def score(m: Served, X: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows -> (prob_up, pred_return); values that do not fit float32, or that the model cannot
    answer finitely, are a 422 naming the row (`where.format(i)`; never NaN in a response)."""
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        at = f"{where.format(i)}.{m.features[j]}"
        raise Refused(422, f"{at}: does not fit a 32-bit float", fields=[at])
    p, r = m.model.predict(X)
    if not (np.isfinite(p).all() and np.isfinite(r).all()):
        at = where.format(int(np.argmin(np.isfinite(p) & np.isfinite(r))))
        raise Refused(422, f"{at}: the model gives no finite answer (inputs far outside its training range)",
                      fields=[at])
    m.predictions.inc(len(p))
    return p, r


def answer(obj, m: Served) -> Response:
    """A prediction's JSON with the model's headers."""
    return json_response(obj, headers=m.headers)
