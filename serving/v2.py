"""The Open Inference Protocol (KServe V2, REST) over the same champions: stock KServe/Triton clients work.

Server metadata, liveness and readiness, and per model (`tickcast-h<H>`, optionally with
`/versions/<v>`) readiness, metadata and inference. A model serves one version, its champion: a
version segment naming another registered version is not ready (400) and not found for metadata and
inference (404, naming the champion), since only the gate or an operator's promote or rollback puts a
version in front of users (docs/serving.md). Bodies are JSON (a Content-Type header is optional) or
the binary tensor data extension (`serving.binary_tensors`).
"""
from __future__ import annotations

import numpy as np
from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag

from serving import binary_tensors
from serving.api_models import (ErrorBody, ModelPath, V2Health, V2Infer, V2InferResponse, V2Metadata, V2ModelReady,
                                V2Server, VersionPath)
from serving.ops import readiness
from serving.predict import Refused, answer, champion, check_api_key, score, service, validated
from tickcast import __version__

api = APIBlueprint("v2", __name__, url_prefix="/v2", abp_tags=[Tag(name="v2", description="KServe V2")])

ERRORS = {400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 413: ErrorBody, 415: ErrorBody, 422: ErrorBody,
          503: ErrorBody}
META_ERRORS = {404: ErrorBody, 422: ErrorBody, 503: ErrorBody}
PREFIX = "tickcast-h"      # model_io.model_name (not imported: model_io brings MLflow, ~100 MiB)
OUTPUTS = ("prob_up", "pred_return")


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


class NotServed(Refused):
    """A registered version that is not the champion: not ready, and not found for metadata and infer."""


def _model(name: str, version: str | None = None):
    """The champion `name` serves; with `version`, only if that is the champion's version."""
    m = _champion(name)
    if version is None or version == m.version:
        return m
    entry = (service().models.get().state or {}).get("models", {}).get(str(m.horizon), {})
    registered = entry.get("versions") or []
    if version in registered:
        raise NotServed(404, f"{name} v{version} is registered but not served: the service answers with the "
                           f"champion only, v{m.version} (a version serves once the gate, or an operator's "
                           f"`tickcast models promote|rollback`, makes it the champion)",
                      fields=["model_version"], served_version=m.version)
    raise Refused(404, f"unknown version {version[:32]!r} of {name}: registered versions are "
                       f"{', '.join(registered[:20]) or 'unknown'}; the champion is v{m.version}",
                  fields=["model_version"], served_version=m.version)


@api.get("", summary="Server metadata (V2)", responses={200: V2Server})
def server_metadata():
    return jsonify({"name": "tickcast", "version": __version__, "extensions": [binary_tensors.EXTENSION]})


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


def _model_ready(name: str, version: str | None):
    """200 when the model (version) answers now; 400, with the reason, when it is known but does not
    (no champion, not loaded yet, a version that is not the champion); 404 when unknown."""
    try:
        m = _model(name, version)
        state = service().models.get().state or {}
        champ = (state.get("models", {}).get(str(m.horizon), {}).get("champion") or {}).get("version")
        if champ is not None and champ != m.version:
            raise Refused(503, service().models.get().errors.get(m.horizon)
                          or f"{name} v{champ} is the champion and is not loaded yet")
    except Refused as e:
        if e.status == 404 and not isinstance(e, NotServed):        # unknown model or version
            return e.response()
        return Refused(400, e.message, name=name, ready=False).response()
    return jsonify({"name": name, "ready": True})


@api.get("/models/<model_name>/ready", summary="Model readiness (V2): 400 when not ready",
         responses={200: V2ModelReady, 400: ErrorBody, 404: ErrorBody, 422: ErrorBody})
@validated
def model_ready(path: ModelPath):
    return _model_ready(path.model_name, None)


@api.get("/models/<model_name>/versions/<model_version>/ready",
         summary="Model version readiness (V2): 400 unless it is the champion",
         responses={200: V2ModelReady, 400: ErrorBody, 404: ErrorBody, 422: ErrorBody})
@validated
def version_ready(path: VersionPath):
    return _model_ready(path.model_name, path.model_version)


def _metadata(name: str, version: str | None):
    try:
        m = _model(name, version)
    except Refused as e:
        return e.response()
    F = len(m.features)
    return answer({
        "name": m.name, "versions": [m.version], "platform": "tflite",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, F]}],
        "outputs": [{"name": n, "datatype": "FP32", "shape": [-1]} for n in OUTPUTS],
        "parameters": {"feature_names": m.features, "feature_version": m.feature_version,
                       "horizon": m.horizon}}, m)


@api.get("/models/<model_name>", summary="Model metadata (V2)", responses={200: V2Metadata, **META_ERRORS})
@validated
def metadata(path: ModelPath):
    """Inputs, outputs and `parameters.feature_names`: the column order of the `features` input."""
    return _metadata(path.model_name, None)


@api.get("/models/<model_name>/versions/<model_version>", summary="Model version metadata (V2)",
         responses={200: V2Metadata, **META_ERRORS})
@validated
def version_metadata(path: VersionPath):
    """As without the version segment, when it names the champion's version; else 404."""
    return _metadata(path.model_name, path.model_version)


def _features(m, body: V2Infer) -> np.ndarray:
    """The `features` tensor as an (n, F) float32 array, or a 4xx naming what is wrong with it."""
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
    if t.data is None:
        raise Refused(422, "inputs[0].data: missing (send data, or parameters.binary_data_size with the "
                           "binary tensor data extension's Inference-Header-Content-Length header)",
                      fields=["inputs[0].data"])
    nested = isinstance(t.data, list) and t.data and isinstance(t.data[0], list)
    flat = [v for row in t.data for v in row] if nested else t.data
    if len(flat) != t.shape[0] * F or (nested and any(len(row) != F for row in t.data)):
        raise Refused(422, f"inputs[0].data: {len(flat)} values do not fill shape {t.shape}",
                      fields=["inputs[0].data"])
    return np.asarray(flat, dtype=np.float32).reshape(t.shape[0], F)


def _infer(name: str, version: str | None, body: V2Infer):
    try:
        check_api_key()
        m = _model(name, version)
        X = _features(m, body)
        wanted = binary_tensors.requested(body, OUTPUTS) if body.outputs or body.parameters else None
        p, r = score(m, X, "inputs[0].data[{}]")
    except Refused as e:
        return e.response()
    if wanted is not None:       # a subset of the outputs, or some as binary
        head = {"model_name": m.name, "model_version": m.version, **({"id": body.id} if body.id is not None else {})}
        values = {"prob_up": p, "pred_return": r}
        return binary_tensors.response(head, [(n, b, values[n]) for n, b in wanted], m.headers)
    n = len(p)
    out = {"model_name": m.name, "model_version": m.version,
           "outputs": [{"name": "prob_up", "datatype": "FP32", "shape": [n], "data": p.tolist()},
                       {"name": "pred_return", "datatype": "FP32", "shape": [n], "data": r.tolist()}]}
    if body.id is not None:
        out["id"] = body.id
    return answer(out, m)


@api.post("/models/<model_name>/infer", summary="Inference (V2)", responses={200: V2InferResponse, **ERRORS})
@validated(binary=binary_tensors.read)
def infer(path: ModelPath, body: V2Infer):
    """One input named `features`, datatype FP32, shape [n, F] in `parameters.feature_names` order."""
    return _infer(path.model_name, None, body)


@api.post("/models/<model_name>/versions/<model_version>/infer", summary="Inference with a version (V2)",
          responses={200: V2InferResponse, **ERRORS})
@validated(binary=binary_tensors.read)
def version_infer(path: VersionPath, body: V2Infer):
    """As without the version segment, when it names the champion's version; else 404."""
    return _infer(path.model_name, path.model_version, body)
