"""What the prediction routes share: the champion for a horizon, API keys, rows -> outputs."""
from __future__ import annotations

import hmac

import numpy as np
from flask import current_app, jsonify, request

from serving import metrics
from serving.models import Served


class Refused(Exception):
    """A request answered with a 4xx/503 JSON error."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra

    def response(self):
        r = jsonify({"error": self.message, **self.extra})
        r.status_code = self.status
        return r


def service():
    return current_app.extensions["tickcast"]


def check_api_key() -> None:
    keys = service().settings.serve_api_keys
    if not keys:
        return
    given = request.headers.get("X-API-Key", "")
    if not any(hmac.compare_digest(given.encode(), k.encode()) for k in keys):
        raise Refused(401, "missing or unknown API key (header X-API-Key)")


def champion(horizon: int) -> Served:
    snap = service().models.get()
    served = snap.served.get(horizon)
    if served is not None:
        return served
    if horizon in snap.errors:
        raise Refused(503, snap.errors[horizon], horizon=horizon)
    known = snap.horizons()
    if snap.state is None:
        why = service().models.sync_error or "the model registry has not been read yet"
        raise Refused(503, f"no model loaded: {why}", horizon=horizon)
    raise Refused(404, f"unknown horizon {horizon}: models exist for horizons {known or 'none'}",
                  fields=["horizon"], horizon=horizon)


def score(m: Served, X: np.ndarray, where: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows -> (prob_up, pred_return); values that do not fit float32, or that the model cannot
    answer finitely, are a 422 naming the row (never NaN in a response)."""
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise Refused(422, f"{where[i]}.{m.features[j]}: does not fit a 32-bit float",
                      fields=[f"{where[i]}.{m.features[j]}"])
    p, r = m.model.predict(X)
    ok = np.isfinite(p) & np.isfinite(r)
    if not ok.all():
        i = int(np.argmin(ok))
        raise Refused(422, f"{where[i]}: the model gives no finite answer (inputs far outside its training range)",
                      fields=[where[i]])
    metrics.PREDICTIONS.labels(m.name, m.version).inc(len(p))
    return p, r


def with_version(resp, m: Served):
    resp.headers["X-Model-Version"] = m.version
    resp.headers["X-Model-Name"] = m.name
    return resp
