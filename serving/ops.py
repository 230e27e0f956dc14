"""Operations: liveness, readiness, Prometheus metrics."""
from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from serving import metrics
from serving.api_models import ErrorBody, Status
from serving.predict import Refused, service

api = APIBlueprint("ops", __name__, abp_tags=[Tag(name="ops")])


def readiness() -> list[str]:
    """Why the service is not ready (empty: ready): a champion loaded for every horizon that has
    one, and the feature table readable."""
    svc = service()
    snap = svc.models.get()
    problems = []
    if snap.state is None:
        problems.append(f"model registry not read yet{': ' + svc.models.sync_error if svc.models.sync_error else ''}")
    else:
        for h, m in snap.state["models"].items():
            champ = m.get("champion")
            served = snap.served.get(int(h))
            if champ and (served is None or served.version != champ["version"]):
                problems.append(snap.errors.get(int(h)) or f"{m['name']} v{champ['version']} not loaded yet")
    feed = svc.feed.problem()        # the watcher says whether silver.features is readable
    if feed:
        problems.append(feed)
    return problems


@api.get("/health", summary="Liveness", responses={200: Status})
def health():
    return jsonify({"status": "live"})


@api.get("/ready", summary="Readiness: 503 with the reason unless ready", responses={200: Status, 503: ErrorBody})
def ready():
    problems = readiness()
    if problems:
        return Refused(503, "; ".join(problems)).response()
    snap = service().models.get()
    return jsonify({"status": "ready", "serving": {str(h): f"{m.name} v{m.version}" for h, m in snap.served.items()}})


def register_plain_routes(app) -> None:
    """/metrics (Prometheus text) and /openapi.json: plain routes, left out of the OpenAPI document."""

    @app.get("/metrics", doc_ui=False)
    def prometheus():
        metrics.set_lost_offsets(service().feed.snapshot().lost_offsets)
        body, ctype = metrics.exposition()
        return Response(body, content_type=ctype)

    @app.get("/openapi.json", doc_ui=False)
    def openapi():
        """The document the request models generate (also at /docs/openapi.json, under Swagger UI at /docs/)."""
        return jsonify(app.api_doc)
