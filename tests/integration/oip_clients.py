"""Drive a running `tickcast serve` with stock Open Inference Protocol clients from PyPI (Triton's
`tritonclient.http`, KServe's `InferenceRESTClient`): every V2 route, JSON and binary tensors, and
the bad requests a user makes. Run with .venv-oip's Python (scripts/setup-oip-clients.sh), not .venv's:
`python oip_clients.py IN.json OUT.json`. IN names the service, the model, its versions and the rows;
OUT holds what the clients answered, for tests/integration/test_serving_oip.py to check.
"""
from __future__ import annotations

import asyncio
import json
import sys

import numpy as np


def triton(cfg: dict) -> dict:
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    c = th.InferenceServerClient(cfg["hostport"])
    name, champ, other = cfg["model"], cfg["champion"], cfg["other_version"]
    X = np.asarray(cfg["rows"], dtype=np.float32)
    out: dict = {"live": c.is_server_live(), "ready": c.is_server_ready(), "server": c.get_server_metadata(),
                 "model_ready": c.is_model_ready(name), "champion_ready": c.is_model_ready(name, champ),
                 "other_ready": c.is_model_ready(name, other), "unknown_version_ready": c.is_model_ready(name, "9999"),
                 "unknown_model_ready": c.is_model_ready("tickcast-h9999"),
                 "metadata": c.get_model_metadata(name), "champion_metadata": c.get_model_metadata(name, champ)}

    def infer(x, binary_in, binary_out, version="", datatype="FP32", model=name):
        inp = th.InferInput("features", list(x.shape), datatype)
        inp.set_data_from_numpy(x, binary_data=binary_in)
        outputs = None if binary_out is None else [th.InferRequestedOutput(n, binary_data=binary_out)
                                                   for n in ("prob_up", "pred_return")]
        r = c.infer(model, [inp], model_version=version, outputs=outputs, request_id="oip-1")
        resp = r.get_response()
        return {"prob_up": r.as_numpy("prob_up").tolist(), "pred_return": r.as_numpy("pred_return").tolist(),
                "model_version": resp.get("model_version"), "id": resp.get("id"),
                "binary": [o.get("parameters", {}).get("binary_data_size") is not None for o in resp["outputs"]]}

    out["infer"] = {
        "json": infer(X, False, False),
        "defaults": infer(X, True, None),          # the client's defaults: binary in, binary_data_output
        "binary_in_json_out": infer(X, True, False),
        "champion_version": infer(X, False, False, version=champ)}

    def refused(call) -> dict:
        try:
            call()
        except InferenceServerException as e:
            return {"status": int(e.status()), "message": e.message()}
        return {"status": 200, "message": ""}

    wide = np.concatenate([X, X[:, :1]], axis=1)
    out["errors"] = {
        "wrong_width": refused(lambda: infer(wide, False, False)),
        "wrong_width_binary": refused(lambda: infer(wide, True, None)),
        "wrong_datatype": refused(lambda: infer(X.astype(np.int32), False, False, datatype="INT32")),
        "wrong_datatype_binary": refused(lambda: infer(X.astype(np.int32), True, None, datatype="INT32")),
        "unknown_model": refused(lambda: infer(X, False, False, model="tickcast-h9999")),
        "unknown_version": refused(lambda: infer(X, False, False, version="9999")),
        "other_version": refused(lambda: infer(X, False, False, version=other)),
        "unknown_model_metadata": refused(lambda: c.get_model_metadata("resnet")),
        "unknown_version_metadata": refused(lambda: c.get_model_metadata(name, "9999")),
        "other_version_metadata": refused(lambda: c.get_model_metadata(name, other)),
    }
    c.close()
    return out


async def kserve(cfg: dict) -> dict:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    base, name = cfg["url"], cfg["model"]
    X = np.asarray(cfg["rows"], dtype=np.float32)
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    out: dict = {"live": await client.is_server_live(base), "ready": await client.is_server_ready(base),
                 "model_ready": await client.is_model_ready(base, name),
                 "unknown_model_ready": await client.is_model_ready(base, "tickcast-h9999")}

    def request(x, binary, datatype="FP32"):
        inp = InferInput("features", list(x.shape), datatype)
        inp.set_data_from_numpy(x, binary_data=binary)
        return InferRequest(model_name=name, infer_inputs=[inp], request_id="oip-2")

    async def infer(x, binary, model=name, datatype="FP32"):
        r = await client.infer(base, request(x, binary, datatype), model_name=model)
        got = {o.name: o.as_numpy().tolist() for o in r.outputs}
        return {"prob_up": got["prob_up"], "pred_return": got["pred_return"], "id": r.id}

    out["infer"] = {"json": await infer(X, False), "binary": await infer(X, True)}

    async def refused(coro) -> dict:
        try:
            await coro
        except httpx.HTTPStatusError as e:
            return {"status": e.response.status_code, "body": e.response.json(),
                    "content_type": e.response.headers.get("content-type")}
        return {"status": 200, "body": None, "content_type": None}

    wide = np.concatenate([X, X[:, :1]], axis=1)
    out["errors"] = {
        "wrong_width": await refused(infer(wide, False)),
        "wrong_datatype": await refused(infer(X.astype(np.int32), False, datatype="INT32")),
        "unknown_model": await refused(infer(X, False, model="tickcast-h9999")),
    }
    await client.close()
    return out


def main() -> None:
    cfg = json.loads(open(sys.argv[1]).read())
    result = {"triton": triton(cfg), "kserve": asyncio.run(kserve(cfg))}
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
