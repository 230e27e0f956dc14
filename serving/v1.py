"""tickcast's own JSON routes (`/v1`): predictions from rows or from a symbol's newest features, models."""
from __future__ import annotations

import hmac
import time
from datetime import datetime, timezone

import numpy as np
from flask import jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from serving import metrics
from serving.api_models import (ErrorBody, HorizonQuery, Latest, Models, PredictBody, Predictions, Reloaded,
                                SymbolPath)
from serving.predict import Refused, answer, champion, check_api_key, score, service, validated
from tickcast.timeunits import MINUTE_MS as BAR_MS

api = APIBlueprint("v1", __name__, url_prefix="/v1", abp_tags=[Tag(name="v1", description="tickcast JSON")])

ERRORS = {401: ErrorBody, 404: ErrorBody, 413: ErrorBody, 415: ErrorBody, 422: ErrorBody, 503: ErrorBody}


def _fields(m, i: int, row: dict) -> None:
    want = m.features
    missing = [f for f in want if f not in row]
    extra = [f for f in row if f not in set(want)]
    if missing or extra:
        fields = [f"rows[{i}].{f}" for f in missing + extra]
        parts = ([f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"] if missing else []) + \
                ([f"not features of {m.name} v{m.version}: {', '.join(extra[:5])}"] if extra else [])
        raise Refused(422, f"rows[{i}]: " + "; ".join(parts), fields=fields[:50])


@api.post("/predict", summary="Predict from feature rows", responses={200: Predictions, **ERRORS})
@validated
def predict(body: PredictBody):
    """Every feature of the horizon's champion, by name, per row; answers in row order."""
    svc = service()
    try:
        check_api_key(svc)
        rows = body.rows
        limit = svc.settings.serve_max_rows
        if len(rows) > limit:
            raise Refused(413, f"{len(rows)} rows is over the limit of {limit} (TICKCAST_SERVE_MAX_ROWS)",
                          fields=["rows"])
        m = champion(body.horizon, svc)
        names = m.feature_set
        for i, row in enumerate(rows):
            if row.keys() != names:
                _fields(m, i, row)
        X = np.array([m.row_values(row) for row in rows], dtype=np.float32)
        p, r = score(m, X, "rows[{}]")
    except Refused as e:
        return e.response()
    h, name, version, fv = m.horizon, m.name, m.version, m.feature_version
    out = [{"prob_up": a, "pred_return": b, "horizon": h, "model_name": name, "model_version": version,
            "feature_version": fv} for a, b in zip(p.tolist(), r.tolist())]
    return answer({"predictions": out}, m)


@api.get("/predict/<symbol>", summary="Predict from a symbol's newest feature row",
         responses={200: Latest, **ERRORS})
def latest(path: SymbolPath, query: HorizonQuery):
    """The champion's answer for the newest `silver.features` row of the symbol, with its age."""
    try:
        check_api_key()
        m = champion(query.horizon)
        feed = service().feed.snapshot()
        row = feed.get(path.symbol, m.feature_version)
        if row is None:
            if feed.error and not feed.symbols():
                raise Refused(503, f"feature table not readable: {feed.error}")
            known = feed.symbols()
            raise Refused(404, f"unknown symbol {path.symbol!r}: no feature row of version {m.feature_version} "
                               f"(symbols with features: {', '.join(known[:20]) or 'none'})", fields=["symbol"])
        X = row.vector(m.features)
        if not np.isfinite(X).all():
            gaps = [f for f, v in zip(m.features, X[0]) if not np.isfinite(v)]
            raise Refused(503, f"the newest feature row of {row.symbol} lacks {', '.join(gaps[:5])}",
                          window_start=_iso(row.window_start_ms))
        p, r = score(m, X, "row")
    except Refused as e:
        return e.response()
    staleness = time.time() - (row.window_start_ms + BAR_MS) / 1000
    metrics.FEATURE_STALENESS.labels(row.symbol).set(staleness)
    return answer({
        "symbol": row.symbol, "window_start": _iso(row.window_start_ms), "staleness_seconds": round(staleness, 3),
        "prob_up": float(p[0]), "pred_return": float(r[0]), "horizon": m.horizon, "model_name": m.name,
        "model_version": m.version, "feature_version": m.feature_version}, m)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@api.get("/models", summary="Champions and challengers per horizon, with their scores",
         responses={200: Models, 503: ErrorBody})
def models():
    """Walk-forward scores and the gate's decision (MLflow), live hit rate/Brier next to the
    baselines' (gold.model_scores), and the version this worker answers with."""
    snap = service().models.get()
    if snap.state is None:
        return Refused(503, f"the model registry has not been read yet: {service().models.sync_error}").response()
    out = []
    for h, m in sorted(snap.state["models"].items(), key=lambda kv: int(kv[0])):
        served = snap.served.get(int(h))
        out.append({"name": m["name"], "horizon": m["horizon"], "champion": m["champion"],
                    "challengers": m["challengers"], "serving": served.version if served else None,
                    "error": snap.errors.get(int(h)), "events": m.get("events", [])})
    return jsonify({"models": out, "synced_at": snap.state.get("synced_at")})


@api.post("/models/reload", summary="Re-read the model aliases now (admin token)",
          responses={200: Reloaded, 400: ErrorBody, 401: ErrorBody, 503: ErrorBody})
def reload():
    """Needs `Authorization: Bearer <TICKCAST_SERVE_ADMIN_TOKEN>`; refused (401) when that setting is empty.
    This worker answers with the new champions at once; the others within TICKCAST_SERVE_RELOAD_SECONDS."""
    if request.content_length or request.environ.get("HTTP_TRANSFER_ENCODING"):
        return Refused(400, "POST /v1/models/reload takes no body (send none; the token goes in the "
                            "Authorization header)", fields=["body"]).response()
    token = service().settings.serve_admin_token
    given = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Refused(401, "reload needs Authorization: Bearer <TICKCAST_SERVE_ADMIN_TOKEN>"
                       + ("" if token else " (the setting is empty: reload is off)")).response()
    problem = service().request_sync()
    if problem:
        return Refused(503, problem).response()
    snap = service().models.get()
    return jsonify({"serving": {str(h): m.version for h, m in snap.served.items()},
                    "errors": {str(h): e for h, e in snap.errors.items()}})
