"""Triton's gRPC client (`tritonclient.grpc`) against a predictor, as a separate program.

It cannot run in the tests' own process: Triton's and KServe's Python packages both register
the protocol's `inference.*` messages in protobuf's default pool, and the second import fails
("duplicate symbol 'inference.ServerLiveRequest'"). The tests run it with a JSON job on stdin
and read a JSON answer on stdout:

    {"url": "127.0.0.1:PORT", "model": "flights", "requests": [REQUEST, ...]}
        -> [{"ok": true, "outputs": {name: values}} | {"ok": false, "code": "INVALID_ARGUMENT", "message": ...}]
    {"url": ..., "model": ..., "load": {"seconds": S, "good": REQUEST, "bad": [REQUEST, ...], "bad_share": 0.1}}
        -> {"good": n, "bad": n, "codes": {status: count}, "good_failed": n, "bad_not_invalid": [message, ...]}

A REQUEST is {"inputs": [{"name", "datatype", "shape", "data"}, ...]}; an input may also give
"send_shape", "send_datatype" or "send_raw_hex" to send what Triton's client would refuse to build
(a shape or datatype that disagrees with the data, or raw bytes as given).
"""

from __future__ import annotations

import json
import random
import sys
import time

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException, triton_to_np_dtype


def _inputs(request: dict) -> list:
    inputs = []
    for spec in request["inputs"]:
        item = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
        if spec["datatype"] == "BYTES":
            array = np.array([str(v).encode() for v in spec["data"]], dtype=object)
        else:
            array = np.array(spec["data"], dtype=triton_to_np_dtype(spec["datatype"]))
        item.set_data_from_numpy(array.reshape(spec["shape"]))
        if "send_shape" in spec:
            item.set_shape(spec["send_shape"])
        if "send_datatype" in spec:
            item._input.datatype = spec["send_datatype"]
        if "send_raw_hex" in spec:
            item._raw_content = bytes.fromhex(spec["send_raw_hex"])
        inputs.append(item)
    return inputs


def _call(client, model: str, request: dict) -> dict:
    try:
        result = client.infer(model, _inputs(request), client_timeout=30)
    except InferenceServerException as err:
        return {"ok": False, "code": str(err.status()).removeprefix("StatusCode."), "message": err.message()}
    outputs = {}
    for output in result.get_response().outputs:
        values = result.as_numpy(output.name)
        outputs[output.name] = [v.decode() if isinstance(v, bytes) else v for v in values.ravel().tolist()]
    return {"ok": True, "outputs": outputs}


def _load(client, model: str, load: dict) -> dict:
    rng = random.Random(0)
    counts = {"good": 0, "bad": 0, "codes": {}, "good_failed": 0, "bad_not_invalid": []}
    stop = time.monotonic() + load["seconds"]
    while time.monotonic() < stop:
        malformed = rng.random() < load["bad_share"]
        answer = _call(client, model, rng.choice(load["bad"]) if malformed else load["good"])
        code = "OK" if answer["ok"] else answer["code"]
        counts["bad" if malformed else "good"] += 1
        counts["codes"][code] = counts["codes"].get(code, 0) + 1
        if not malformed and not answer["ok"]:
            counts["good_failed"] += 1
        if malformed and code != "INVALID_ARGUMENT":
            counts["bad_not_invalid"].append(f"{code}: {answer.get('message', '')[:200]}")
    return counts


def main() -> int:
    job = json.load(sys.stdin)
    with triton.InferenceServerClient(job["url"]) as client:
        if "load" in job:
            answer = _load(client, job["model"], job["load"])
        else:
            answer = [_call(client, job["model"], request) for request in job["requests"]]
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
