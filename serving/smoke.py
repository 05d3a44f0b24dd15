"""The smoke test: held-out rows sent to a live endpoint must come back as predicted offline."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from kserve.errors import InvalidInput
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from mlworkloads.data import tensors
from mlworkloads.data.preprocessor import Preprocessor
from mlworkloads.serving import v2_rest
from mlworkloads.serving.errors import SmokeTestFailed
from mlworkloads.training.predictions import expected_scores

SMOKE_ROWS = 64
TOLERANCE = 1e-4


@dataclasses.dataclass
class SmokeResult:
    rows: int
    max_difference: float
    #: How the rows were sent: "v2-binary", "v1-json", or the verified examples' protocol.
    protocol: str = "v1-json"


def _instances(rows: pa.Table, feature_columns: list[str]) -> list[dict[str, Any]]:
    columns = {name: rows[name].to_pylist() for name in feature_columns}
    return [{name: columns[name][i] for name in feature_columns} for i in range(rows.num_rows)]


class _NotYetServing(httpx.TransportError):
    """502/503/504 from a proxy in front of the predictor: its endpoints are not published yet."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.status_code}: {response.text[:300]}")
        self.response = response


@retry(
    retry=retry_if_exception_type(httpx.TransportError),
    stop=stop_after_attempt(8),
    wait=wait_exponential(multiplier=0.2, max=3),
    reraise=True,
)
def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """POSTs, retrying a connection that fails and a gateway's 502/503/504 for about 15 s: KServe
    reports a predictor Ready when its Deployment is available, and the Service's endpoints (which
    the API server's service proxy and ingresses route by) are published a moment later."""
    response = client.post(url, content=body, headers=headers)
    if response.status_code in (502, 503, 504):
        raise _NotYetServing(response)
    return response


def post(
    url: str, body: dict[str, Any] | bytes, client: httpx.Client | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POSTs `body` (a JSON object, or bytes sent with `headers`), retrying a connection that
    fails, and returns a 200 response.

    `client`, when given, sends the request (e.g. one authenticated to the Kubernetes API, for
    a `url` through its service proxy); it is not closed here.

    Raises:
        SmokeTestFailed: the request failed, or the endpoint answered anything but 200.
    """
    if not isinstance(body, bytes):
        body, headers = json.dumps(body).encode(), {"content-type": "application/json"}
    try:
        if client is not None:
            response = _post(client, url, body, headers or {})
        else:
            with httpx.Client(timeout=30.0) as own:
                response = _post(own, url, body, headers or {})
    except _NotYetServing as err:
        response = err.response
    except httpx.HTTPError as err:
        raise SmokeTestFailed(f"POST {url} failed: {type(err).__name__}: {err}") from err
    if response.status_code != 200:
        raise SmokeTestFailed(f"POST {url} answered {response.status_code}: {response.text[:500]}")
    return response


def smoke_test(
    base_url: str,
    model_name: str,
    test_rows: pa.Table,
    expected: pa.Table,
    preprocessor: Preprocessor,
    rows: int = SMOKE_ROWS,
    tolerance: float = TOLERANCE,
    client: httpx.Client | None = None,
) -> SmokeResult:
    """Sends the first `rows` test rows and compares the answers with the offline predictions.

    The rows go the fastest way the predictor takes them, V2 binary tensors ("v2-binary"), unless
    a text or category column holds a null, which a tensor cannot carry: then V1 JSON ("v1-json").
    `client`, when given, sends the request (e.g. one authenticated to the Kubernetes API, for
    a `base_url` through its service proxy); it is not closed here.

    Raises:
        SmokeTestFailed: an HTTP error, or a prediction that differs by more than `tolerance`.
    """
    n = min(rows, test_rows.num_rows)
    sample = test_rows.slice(0, n)
    classes = None if preprocessor.task == "regression" else preprocessor.classes
    inputs = _v2_binary_inputs(sample, preprocessor)
    if inputs is not None:
        protocol, url = "v2-binary", f"{base_url.rstrip('/')}/v2/models/{model_name}/infer"
        output = "prediction" if classes is None else "probabilities"
        body, headers = v2_rest.encode_request(inputs, [output])
        response = post(url, body, client, headers)
        try:
            got = v2_rest.decode_response(response.content, response.headers.get(v2_rest.HEADER_LENGTH)).get(output)
        except (InvalidInput, ValueError, KeyError) as err:
            raise SmokeTestFailed(f"POST {url} returned a V2 response that cannot be read: {err}") from err
        if got is None or len(got) != n:
            raise SmokeTestFailed(f"POST {url} returned no {output!r} output of {n} rows: {response.content[:300]!r}")
        got = np.asarray(got, dtype=float)
    else:
        protocol, url = "v1-json", f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"
        body = orjson.dumps({"instances": _instances(sample, preprocessor.feature_columns)})
        response = post(url, body, client, {"content-type": "application/json"})
        got = _v1_scores(response, url, n, classes)
    want = expected_scores(expected, classes, n)
    difference = np.abs(got - want)
    worst = float(difference.max()) if difference.size else 0.0
    if not math.isfinite(worst) or worst > tolerance:
        row = int(np.unravel_index(np.nanargmax(difference), difference.shape)[0])
        per_row = difference.max(axis=-1) if difference.ndim > 1 else difference
        raise SmokeTestFailed(
            f"the endpoint's predictions differ from the offline ones (sent over {protocol}): row {row} got "
            f"{got[row].tolist()}, expected {want[row].tolist()} (max difference {worst:.3g} > tolerance "
            f"{tolerance:g}); {int((per_row > tolerance).sum())} of {n} rows differ."
        )
    return SmokeResult(rows=n, max_difference=worst, protocol=protocol)


def _v2_binary_inputs(rows: pa.Table, preprocessor: Preprocessor) -> list[tuple[str, str, list[int], bytes]] | None:
    """One binary tensor per feature as `v2_input_types` advertises them; None if a null rules V2 out.

    Numbers go as FP64 with NaN for a missing value (what the predictor reads NaN as); category
    values as their text, as BYTES.
    """
    n = rows.num_rows
    inputs = []
    for spec in preprocessor.numeric:
        values = pc.cast(rows[spec["name"]], pa.float64()).to_numpy(zero_copy_only=False)
        inputs.append((spec["name"], "FP64", [n], tensors.encode_numeric(values, "FP64")))
    for spec in preprocessor.categorical:
        column = rows[spec["name"]]
        if column.null_count:
            return None
        text = pc.cast(column, pa.string()).combine_chunks()
        inputs.append((spec["name"], "BYTES", [n], tensors.encode_bytes(text)))
    return inputs


def _v1_scores(response: httpx.Response, url: str, n: int, classes: list[Any] | None) -> np.ndarray:
    predictions = response.json().get("predictions")
    if not isinstance(predictions, list) or len(predictions) != n:
        raise SmokeTestFailed(
            f"POST {url} returned {type(predictions).__name__} of the wrong length, expected {n} rows."
        )
    if classes is None:
        return np.asarray(predictions, dtype=float)
    return np.asarray([[p["probabilities"][str(c)] for c in classes] for p in predictions], dtype=float)
