"""The Open Inference Protocol's binary tensor data extension: a JSON header of
`Inference-Header-Content-Length` bytes, then each tensor's raw little-endian bytes in order.

Stock clients use it by default (Triton's client sends inputs and asks for outputs in binary), so
the V2 routes read and write it beside plain JSON.
"""
from __future__ import annotations

import json

import numpy as np
from flask import Response

from serving.predict import BINARY_ENVIRON, BINARY_HEADER, Refused

EXTENSION = "binary_tensor_data"          # its name in the server metadata's `extensions`
DTYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}


def read(req, model):
    """The request's JSON header validated by `model`, each binary input's `data` a flat float array."""
    raw = req.environ[BINARY_ENVIRON]
    data = req.get_data(cache=False)
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if not 0 < n <= len(data):
        raise Refused(400, f"{BINARY_HEADER}: {raw!r} is not the length of a JSON header within the body of "
                           f"{len(data)} bytes (binary tensor data extension)", fields=[BINARY_HEADER])
    body = model.model_validate_json(data[:n])
    at = n
    for i, t in enumerate(body.inputs):
        size = (t.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        where = f"inputs[{i}]"
        if t.data is not None:
            raise Refused(400, f"{where}: both data and parameters.binary_data_size; send one",
                          fields=[f"{where}.data"])
        dtype = DTYPES.get(t.datatype)
        if dtype is None:
            raise Refused(422, f"{where}.datatype: expected FP32, got {t.datatype[:16]}",
                          fields=[f"{where}.datatype"])
        if type(size) is not int or size < 0 or size % dtype.itemsize or at + size > len(data):
            raise Refused(400, f"{where}.parameters.binary_data_size: {str(size)[:20]} is not a whole number of "
                               f"{t.datatype} values within the {len(data) - at} bytes left of the body",
                          fields=[f"{where}.parameters.binary_data_size"])
        t.data = np.frombuffer(data, dtype=dtype, count=size // dtype.itemsize, offset=at)
        at += size
    if at != len(data):
        raise Refused(400, f"{len(data) - at} bytes after the JSON header and the binary tensors it declares",
                      fields=["body"])
    return body


def requested(body, names: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(output name, as binary?) in answer order: the request's `outputs` if it names some (else all),
    binary where its `binary_data` parameter (default: the request's `binary_data_output`) is true."""
    binary = (body.parameters or {}).get("binary_data_output") is True
    if not body.outputs:
        return [(n, binary) for n in names]
    out = []
    for i, o in enumerate(body.outputs):
        if o.name not in names:
            raise Refused(422, f"outputs[{i}].name: {o.name[:64]!r} is not an output of this model "
                               f"({', '.join(names)})", fields=[f"outputs[{i}].name"])
        flag = (o.parameters or {}).get("binary_data")
        out.append((o.name, binary if flag is None else flag is True))
    return out


def response(head: dict, tensors: list[tuple[str, bool, np.ndarray]], headers) -> Response:
    """`head` with an FP32 output per tensor: JSON `data`, or the extension's bytes after the header."""
    blobs = []
    outputs = head["outputs"] = []
    for name, binary, values in tensors:
        o = {"name": name, "datatype": "FP32", "shape": [len(values)]}
        if binary:
            blob = values.astype("<f4", copy=False).tobytes()
            o["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            o["data"] = values.tolist()
        outputs.append(o)
    text = json.dumps(head, allow_nan=False, separators=(",", ":")).encode()
    if not blobs:
        return Response(text + b"\n", 200, headers=headers, mimetype="application/json")
    return Response(b"".join([text, *blobs]), 200, mimetype="application/octet-stream",
                    headers=[*headers, (BINARY_HEADER, str(len(text)))])
