"""V2 requests for the predictor's tests: one tensor per feature, binary bodies, and every malformed
request of each transport with what its refusal must say."""

import json
import subprocess
import sys

import numpy as np
import orjson
import pyarrow as pa

from mlworkloads.data import tensors
from mlworkloads.serving import v2_rest
from mlworkloads.training.export import load

TRITON_GRPC = [sys.executable, "tests/support/triton_grpc.py"]


def feature_specs(model_dir, rows) -> list[dict]:
    """One input per feature as the model advertises them: numbers FP64 (NaN when missing), text BYTES."""
    preprocessor = load(model_dir).preprocessor
    n = rows.num_rows
    numeric = [
        {"name": c["name"], "datatype": "FP64", "shape": [n],
         "data": [float("nan") if v is None else float(v) for v in rows[c["name"]].to_pylist()]}
        for c in preprocessor.numeric
    ]  # fmt: skip
    text = [
        {"name": c["name"], "datatype": "BYTES", "shape": [n], "data": [str(v) for v in rows[c["name"]].to_pylist()]}
        for c in preprocessor.categorical
    ]
    return numeric + text


def raw(spec) -> bytes:
    if spec["datatype"] == "BYTES":
        return tensors.encode_bytes(pa.array(spec["data"], pa.string()))
    return np.asarray(spec["data"], dtype=tensors.NUMERIC_DTYPES[spec["datatype"]]).tobytes()


def binary_body(specs, outputs=("probabilities",)):
    return v2_rest.encode_request([(s["name"], s["datatype"], s["shape"], raw(s)) for s in specs], list(outputs))


def assemble(specs, edit=None, replaced=None):
    """A binary body and its headers; `edit(document)` changes the JSON header, `replaced` some inputs' bytes."""
    parts = {s["name"]: (replaced or {}).get(s["name"]) or raw(s) for s in specs}
    document = {
        "inputs": [
            {"name": s["name"], "datatype": s["datatype"], "shape": s["shape"],
             "parameters": {"binary_data_size": len(parts[s["name"]])}}
            for s in specs
        ],
    }  # fmt: skip
    if edit:
        edit(document)
    header = orjson.dumps(document)
    return header + b"".join(parts.values()), {v2_rest.HEADER_LENGTH: str(len(header))}


def _set(name, key, value):
    def edit(document):
        next(i for i in document["inputs"] if i["name"] == name)[key] = value

    return edit


def bad_binary_requests(specs):
    """(body, headers, what the 400 must say) for each way a binary request can be wrong."""
    body, headers = assemble(specs)
    length = int(headers[v2_rest.HEADER_LENGTH])
    short = {s["name"]: raw({**s, "data": s["data"][:-1]}) for s in specs}
    origin = raw(next(s for s in specs if s["name"] == "origin"))
    return [
        (body, {v2_rest.HEADER_LENGTH: "many"}, "must be a whole number of bytes"),
        (body, {v2_rest.HEADER_LENGTH: str(len(body) + 1)}, f"the body has {len(body)}"),
        (body, {v2_rest.HEADER_LENGTH: str(length - 3)}, "must be a JSON inference request"),
        (body[:-5], headers, "runs past the end of the body"),
        (body + b"extra", headers, "5 bytes after the inputs' binary data"),
        (body, {}, "the body must be a JSON inference request"),  # binary data but no header
        (body[:length], {}, "has a binary_data_size but the request has no"),
        (*assemble(specs, replaced={"month": short["month"]}), "input 'month' has 248 bytes of binary data"),
        (*assemble(specs, replaced={"tailnum": short["tailnum"]}), "do not hold exactly 32 length-prefixed"),
        (*assemble(specs, _set("month", "datatype", "FLOAT")), "input 'month' has datatype 'FLOAT'"),
        (*assemble(specs, _set("month", "shape", [-32])), "input 'month': shape must be"),
        (*assemble(specs, _set("month", "parameters", {})), 'neither "data" nor'),
        (
            *assemble(specs, replaced={"origin": origin[:4] + b"\xff" + origin[5:]}),
            "'origin': BYTES elements must be UTF-8",
        ),
        (
            *assemble(specs, _set("carrier", "datatype", "FP64")),
            "input 'carrier' has 192 bytes of binary data; shape [32] of FP64 needs 256",
        ),
    ]


def triton_grpc(job: dict) -> dict | list:
    done = subprocess.run(TRITON_GRPC, input=json.dumps(job), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def json_specs(specs):
    """The inputs with NaN as null: JSON has no NaN (the client script turns it back into NaN)."""
    return [{**s, "data": [None if v != v else v for v in s["data"]]} if s["datatype"] == "FP64" else s for s in specs]


def bad_grpc_requests(specs):
    """(request, what the INVALID_ARGUMENT must say) for each way a gRPC request can be wrong."""
    specs = json_specs(specs)

    def changed(name, **fields):
        return {"inputs": [{**s, **fields} if s["name"] == name else s for s in specs]}

    return [
        (changed("month", send_shape=[33]), "input 'month' has 256 bytes of binary data; shape [33]"),
        (changed("tailnum", send_raw_hex="0500000041"), "input 'tailnum': its 5 bytes"),
        (changed("month", send_datatype="FLOAT"), "input 'month' has datatype 'FLOAT'"),
        (changed("month", send_shape=[-1]), "input 'month': shape must be"),
        (changed("origin", send_raw_hex="03000000ffffff"), "'origin'"),
        (changed("distance", datatype="BYTES", data=["far"] * 32), "input 'distance' is numeric"),
        ({"inputs": specs[1:]}, "inputs ['month'] are missing"),
        (changed("carrier", send_shape=[32, 2]), "input 'carrier'"),
    ]
