"""The Open Inference Protocol (KServe V2) over the same champions: existing KServe/Triton clients work."""
from __future__ import annotations

import numpy as np
from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag

from serving.api_models import ErrorBody, ModelPath, V2Health, V2Infer, V2InferResponse, V2Metadata
from serving.ops import readiness
from serving.predict import Refused, answer, champion, check_api_key, score, service, validated

api = APIBlueprint("v2", __name__, url_prefix="/v2", abp_tags=[Tag(name="v2", description="KServe V2")])

ERRORS = {401: ErrorBody, 404: ErrorBody, 413: ErrorBody, 422: ErrorBody, 503: ErrorBody}
PREFIX = "tickcast-h"      # model_io.model_name (not imported: model_io brings MLflow, ~100 MiB)


def _horizon(name: str) -> int:
    h = name[len(PREFIX):]
    if not name.startswith(PREFIX) or not h.isdigit() or f"{PREFIX}{int(h)}" != name:
        raise Refused(404, f"unknown model {name!r}: models are named {PREFIX}<horizon minutes>",
                      fields=["model_name"])
    return int(h)


def _champion(name: str):
    try:
        return champion(_horizon(name))
    except Refused as e:
        if e.status == 404 and "model_name" not in (e.extra.get("fields") or []):
            raise Refused(404, f"unknown model {name!r}: {e.message}", fields=["model_name"]) from None
        raise


@api.get("/models/<model_name>", summary="Model metadata (V2)", responses={200: V2Metadata, 404: ErrorBody,
                                                                            422: ErrorBody, 503: ErrorBody})
def metadata(path: ModelPath):
    """Inputs, outputs and `parameters.feature_names`: the column order of the `features` input."""
    try:
        m = _champion(path.model_name)
    except Refused as e:
        return e.response()
    F = len(m.features)
    return answer({
        "name": m.name, "versions": [m.version], "platform": "tflite",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, F]}],
        "outputs": [{"name": "prob_up", "datatype": "FP32", "shape": [-1]},
                    {"name": "pred_return", "datatype": "FP32", "shape": [-1]}],
        "parameters": {"feature_names": m.features, "feature_version": m.feature_version,
                       "horizon": m.horizon}}, m)


@api.post("/models/<model_name>/infer", summary="Inference (V2)", responses={200: V2InferResponse, **ERRORS})
@validated
def infer(path: ModelPath, body: V2Infer):
    """One input named `features`, datatype FP32, shape [n, F] in `parameters.feature_names` order."""
    try:
        check_api_key()
        m = _champion(path.model_name)
        t = body.inputs[0]
        F = len(m.features)
        if t.name != "features":
            raise Refused(422, "inputs[0].name: expected 'features', got a tensor named otherwise",
                          fields=["inputs[0].name"])
        if t.datatype not in ("FP32", "FP64"):
            raise Refused(422, "inputs[0].datatype: expected FP32", fields=["inputs[0].datatype"])
        if len(t.shape) != 2 or t.shape[1] != F or t.shape[0] < 1:
            raise Refused(422, f"inputs[0].shape: expected [n, {F}] with n >= 1", fields=["inputs[0].shape"])
        limit = service().settings.serve_max_rows
        if t.shape[0] > limit:
            raise Refused(413, f"{t.shape[0]} rows is over the limit of {limit} (TICKCAST_SERVE_MAX_ROWS)",
                          fields=["inputs[0].shape"])
        flat = [v for row in t.data for v in row] if t.data and isinstance(t.data[0], list) else t.data
        if len(flat) != t.shape[0] * F or (t.data and isinstance(t.data[0], list)
                                           and any(len(row) != F for row in t.data)):
            raise Refused(422, f"inputs[0].data: {len(flat)} values do not fill shape {t.shape}",
                          fields=["inputs[0].data"])
        X = np.asarray(flat, dtype=np.float32).reshape(t.shape[0], F)
        p, r = score(m, X, "inputs[0].data[{}]")
    except Refused as e:
        return e.response()
    n = len(p)
    out = {"model_name": m.name, "model_version": m.version,
           "outputs": [{"name": "prob_up", "datatype": "FP32", "shape": [n], "data": p.tolist()},
                       {"name": "pred_return", "datatype": "FP32", "shape": [n], "data": r.tolist()}]}
    if body.id is not None:
        out["id"] = body.id
    return answer(out, m)


@api.get("/health/live", summary="Liveness (V2)", responses={200: V2Health})
def live():
    return jsonify({"live": True})


@api.get("/health/ready", summary="Readiness (V2): 400 when not ready, as the protocol says",
         responses={200: V2Health, 400: ErrorBody})
def ready():
    problems = readiness()
    if problems:
        return Refused(400, "; ".join(problems), ready=False).response()
    return jsonify({"ready": True})
