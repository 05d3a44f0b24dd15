"""The predictor's V2 REST inference route: JSON bodies and the binary tensor data extension.

KServe 0.21's own `/v2/models/{name}/infer` validates JSON through pydantic and FastAPI's
encoder (about half of a 256-row request's time), takes a body without
`Content-Type: application/json` for binary data and refuses it when the
`Inference-Header-Content-Length` header is missing (what `tritonclient.http` sends in its JSON
mode), and answers 500 to binary data whose size disagrees with its shape. This route is
installed ahead of KServe's on the same app and hands the same `InferRequest` to KServe's data
plane (so KServe's model lifecycle, latency metrics and error handlers stay as they are), with:

- a body without the header read as JSON, whatever its content type, its `NaN` and
  `Infinity` included (tritonclient's JSON mode writes a missing value as `NaN`);
- binary inputs kept as bytes (`InferInput._raw_data`, as KServe's gRPC server keeps
  `raw_input_contents`) for `tensors.py` to decode without a loop over rows;
- every size checked: the header against the body, each `binary_data_size` against what is
  left, the tensors' bytes against shape and datatype, and no bytes left over;
- outputs the predictor encoded as binary sent after the JSON header, with the header set.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import FastAPI
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlworkloads.data import tensors
from mlworkloads.data.errors import TensorError

HEADER_LENGTH = "inference-header-content-length"
BINARY_EXTENSION = "binary_tensor_data"
INFER_PATH = "/v2/models/{model_name}/infer"


def install(app: FastAPI, dataplane: DataPlane) -> None:
    """Puts the V2 inference route, and the server metadata naming the binary extension, ahead of
    KServe's (Starlette takes the first route that matches)."""

    async def infer(request: Request) -> Response:
        model_name = request.path_params["model_name"]
        if not await dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name)
        body = await request.body()
        infer_request = decode_request(body, request.headers.get(HEADER_LENGTH), model_name)
        response, headers = await dataplane.infer(
            model_name=model_name, request=infer_request, headers=dict(request.headers)
        )
        content, content_headers = encode_response(response)
        return Response(content, headers={**headers, **content_headers})

    async def server_metadata(request: Request) -> Response:
        # A server with the binary tensor data extension says so in its metadata (the
        # extension's spec); KServe's lists only its model repository extension.
        document = dataplane.metadata()
        return JSONResponse({**document, "extensions": [*document["extensions"], BINARY_EXTENSION]})

    app.router.routes.insert(0, Route(INFER_PATH, infer, methods=["POST"]))
    app.router.routes.insert(0, Route("/v2", server_metadata, methods=["GET"]))


def decode_request(body: bytes, header_length: str | None, model_name: str) -> InferRequest:
    """A V2 REST body (JSON, or a JSON header and binary tensors) -> KServe's `InferRequest`.

    Raises:
        InvalidInput: naming the header, input or field at fault.
    """
    json_length = len(body) if header_length is None else _header_length(header_length, len(body))
    view = memoryview(body)
    try:
        document = orjson.loads(view[:json_length])
    except orjson.JSONDecodeError as err:
        document = _json_with_non_finite_numbers(view[:json_length], err, header_length is not None, json_length)
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise InvalidInput('expected a JSON object with "inputs": a list of tensors.')
    offset, inputs = json_length, []
    for i, spec in enumerate(document["inputs"]):
        item, size = _input(spec, i)
        if size is not None:
            if header_length is None:
                raise InvalidInput(
                    f"input {item.name!r} has a binary_data_size but the request has no {HEADER_LENGTH} header "
                    "saying where its JSON ends."
                )
            if offset + size > len(body):
                raise InvalidInput(
                    f"input {item.name!r}: binary_data_size {size} runs past the end of the body "
                    f"({len(body) - offset} bytes left)."
                )
            item._raw_data = view[offset : offset + size]  # KServe's field for a tensor's bytes
            offset += size
        inputs.append(item)
    if offset != len(body):
        raise InvalidInput(
            f"the body has {len(body) - offset} bytes after the inputs' binary data that no binary_data_size "
            "accounts for."
        )
    return InferRequest(
        model_name=model_name,
        request_id=_optional_text(document, "id"),
        parameters=_parameters(document.get("parameters"), "the request's parameters"),
        infer_inputs=inputs,
        request_outputs=_requested_outputs(document.get("outputs")),
    )


def _json_with_non_finite_numbers(text: memoryview, error: Exception, has_header: bool, json_length: int) -> Any:
    """The JSON orjson refused, read again allowing `NaN`, `Infinity` and `-Infinity`.

    They are not JSON, but Python's `json.dumps` writes them, and so does `tritonclient.http`
    in its JSON mode: a missing value sent as NaN, as the binary mode sends it, reaches here
    as the `NaN` token. A numeric tensor's NaN is a missing value and its infinity is refused
    naming the input (`payload.v2_features`), whichever way the tensor came.
    """
    try:
        return json.loads(bytes(text))
    except (ValueError, UnicodeDecodeError):
        part = f"the first {json_length} bytes (the {HEADER_LENGTH} header)" if has_header else "the body"
        raise InvalidInput(f"{part} must be a JSON inference request: {error}") from error


def _header_length(value: str, body_size: int) -> int:
    try:
        length = int(value)
    except ValueError:
        raise InvalidInput(f"the {HEADER_LENGTH} header must be a whole number of bytes, got {value!r}.") from None
    if not 0 < length <= body_size:
        raise InvalidInput(
            f"the {HEADER_LENGTH} header says the JSON part has {length} bytes; the body has {body_size}."
        )
    return length


def _input(spec: Any, index: int) -> tuple[InferInput, int | None]:
    """One input's JSON -> an `InferInput` (with its JSON data, if any) and its binary size, if any."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidInput(f'inputs[{index}] must be an object with a "name".')
    name, shape = spec["name"], spec.get("shape")
    try:
        datatype = tensors.check_datatype(name, spec.get("datatype"))
        tensors.element_count(name, shape)
    except TensorError as err:
        raise InvalidInput(str(err)) from err
    parameters = _parameters(spec.get("parameters"), f"input {name!r}'s parameters")
    item = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
    if "data" in spec:
        item.data = spec["data"]
        return item, None
    size = (parameters or {}).get("binary_data_size")
    if size is None:
        raise InvalidInput(f'input {name!r} has neither "data" nor a "binary_data_size" parameter.')
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"input {name!r}: binary_data_size must be a whole number of bytes, got {size!r}.")
    return item, size


def _parameters(value: Any, what: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(value).__name__}.")
    return value


def _optional_text(document: dict, key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f'"{key}" must be text, got {type(value).__name__}.')
    return value


def _requested_outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in value):
        raise InvalidInput('"outputs" must be a list of objects with a "name".')
    return [
        RequestedOutput(o["name"], _parameters(o.get("parameters"), f"output {o['name']!r}'s parameters"))
        for o in value
    ]


def encode_response(response: InferResponse | dict) -> tuple[bytes, dict[str, str]]:
    """The response body and its content headers: JSON, or a JSON header and binary outputs."""
    if not isinstance(response, InferResponse):
        return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), {"content-type": "application/json"}
    outputs, binary = [], []
    for output in response.outputs:
        entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        parameters = dict(output.parameters or {})
        if output._raw_data is not None:
            parameters["binary_data_size"] = len(output._raw_data)
            binary.append(output._raw_data)
        else:
            entry["data"] = output.data
        if parameters:
            entry["parameters"] = parameters
        outputs.append(entry)
    document = {"id": response.id, "model_name": response.model_name, "outputs": outputs}
    if response.model_version:
        document["model_version"] = response.model_version
    if response.parameters:
        document["parameters"] = dict(response.parameters)
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return header, {"content-type": "application/json"}
    return b"".join([header, *binary]), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }


def encode_request(
    inputs: list[tuple[str, str, list[int], bytes]], outputs: list[str], request_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A client's binary request: (name, datatype, shape, tensor bytes) per input, each output asked
    for as a binary tensor. Returns the body and its headers."""
    document: dict[str, Any] = {
        "inputs": [
            {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(raw)}}
            for name, datatype, shape, raw in inputs
        ],
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
    }
    if request_id is not None:
        document["id"] = request_id
    header = orjson.dumps(document)
    body = b"".join([header, *(raw for *_, raw in inputs)])
    return body, {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def decode_response(body: bytes, header_length: str | None) -> dict[str, Any]:
    """A V2 response (JSON, or a JSON header and binary outputs) -> output name -> values
    (numpy arrays, or Arrow string arrays for BYTES) in the outputs' shapes.

    Raises:
        InvalidInput: the header length is wrong; TensorError: an output's bytes disagree with it.
    """
    json_length = len(body) if header_length is None else _header_length(header_length, len(body))
    view = memoryview(body)
    document = orjson.loads(view[:json_length])
    values, _ = tensors.decode_tensors(document.get("outputs", []), view, json_length)
    return values
