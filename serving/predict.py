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


JSON = "application/json"
# The binary tensor data extension's header (Open Inference Protocol), as WSGI names it.
BINARY_HEADER = "Inference-Header-Content-Length"
BINARY_ENVIRON = "HTTP_INFERENCE_HEADER_CONTENT_LENGTH"


def _is_json(mimetype: str) -> bool:
    return mimetype == JSON or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def body_problem(data: bytes, mimetype: str, e: ValidationError | None) -> Response | None:
    """The error for a body that did not parse, naming the real problem (its type, emptiness or
    encoding) before any field message: 415 when it is declared as something else than JSON, or is
    undeclared and not JSON; 422 when declared JSON but empty, not UTF-8 or malformed.
    None: the body is JSON and `e` (if any) is about its fields."""
    if mimetype and not _is_json(mimetype):
        return error(415, f"Content-Type {mimetype} is not accepted: send the body as JSON with Content-Type: "
                          f"{JSON} (or no Content-Type); with curl, --json '<body>' or "
                          f"-H 'Content-Type: {JSON}' -d '<body>'", fields=["Content-Type"])
    if e is None or not any(x["type"] == "json_invalid" for x in e.errors(include_url=False)):
        return None
    status = 422 if mimetype else 415
    need = f"expected a JSON object{'' if mimetype else f' (Content-Type: {JSON})'}"
    if not data.strip():
        return error(422, f"body is empty: {need}", fields=["body"])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as u:
        return error(status, f"body is not UTF-8 text (byte {u.start}): {need}; JSON is UTF-8", fields=["body"])
    if not mimetype:
        return error(415, f"body is not JSON ({e.errors(include_url=False)[0]['msg']}) and has no Content-Type: "
                          f"{need}", fields=["body"])
    return None


def validated(func=None, *, binary=None):
    """Validate a route's `path` and JSON `body` here instead of in flask-openapi3, which documents
    them all the same (`__delay_validate_request__`): pydantic parses the body bytes in Rust
    (`model_validate_json`, ~4 µs for a one-row body) where `get_json` + `model_validate` took ~20 µs.
    Same rules: strict types, no NaN/Infinity (literals or strings). A body without a Content-Type is
    read as JSON (Open Inference Protocol clients send none); a body of another declared type, or
    one that is not JSON, is refused by `body_problem` before any field is looked at.
    `binary(req, body_model)`: the reader of a body in the binary tensor data extension (V2 infer),
    used when the request carries its header."""
    if func is None:
        return functools.partial(validated, binary=binary)
    hints = typing.get_type_hints(func)
    path_model, body_model = hints.get("path"), hints.get("body")

    @functools.wraps(func)
    def view(**kwargs):
        args = {}
        data, mimetype = b"", None
        try:
            if path_model is not None:
                args["path"] = path_model.model_validate(kwargs)
            if body_model is not None:
                req = request._get_current_object()
                if binary is not None and BINARY_ENVIRON in req.environ:
                    args["body"] = binary(req, body_model)
                else:
                    mimetype = req.mimetype
                    if mimetype != JSON and mimetype and not _is_json(mimetype):   # JSON or none: read as JSON
                        return body_problem(b"", mimetype, None)
                    data = req.get_data(cache=False)
                    args["body"] = body_model.model_validate_json(data)
        except ValidationError as e:
            if mimetype is not None:
                return body_problem(data, mimetype, e) or validation_error(e)
            return validation_error(e)
        except Refused as e:
            return e.response()
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
