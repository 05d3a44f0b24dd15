"""The smoke test: held-out rows sent to a live endpoint must come back as predicted offline."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from mlworkloads.serving.errors import SmokeTestFailed
from mlworkloads.training.predictions import expected_scores

SMOKE_ROWS = 64
TOLERANCE = 1e-4


@dataclasses.dataclass
class SmokeResult:
    rows: int
    max_difference: float


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
def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    """POSTs, retrying a connection that fails and a gateway's 502/503/504 for about 15 s: KServe
    reports a predictor Ready when its Deployment is available, and the Service's endpoints (which
    the API server's service proxy and ingresses route by) are published a moment later."""
    response = client.post(url, json=body)
    if response.status_code in (502, 503, 504):
        raise _NotYetServing(response)
    return response


def post(url: str, body: dict[str, Any], client: httpx.Client | None = None) -> httpx.Response:
    """POSTs `body` (retrying a connection that fails), returning a 200 response.

    `client`, when given, sends the request (e.g. one authenticated to the Kubernetes API, for
    a `url` through its service proxy); it is not closed here.

    Raises:
        SmokeTestFailed: the request failed, or the endpoint answered anything but 200.
    """
    try:
        if client is not None:
            response = _post(client, url, body)
        else:
            with httpx.Client(timeout=30.0) as own:
                response = _post(own, url, body)
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
    feature_columns: list[str],
    classes: list[Any] | None,
    rows: int = SMOKE_ROWS,
    tolerance: float = TOLERANCE,
    client: httpx.Client | None = None,
) -> SmokeResult:
    """Sends the first `rows` test rows over V1 and compares with the offline predictions.

    `client`, when given, sends the request (e.g. one authenticated to the Kubernetes API, for
    a `base_url` through its service proxy); it is not closed here.

    Raises:
        SmokeTestFailed: an HTTP error, or a prediction that differs by more than `tolerance`.
    """
    n = min(rows, test_rows.num_rows)
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"
    body = {"instances": _instances(test_rows.slice(0, n), feature_columns)}
    response = post(url, body, client)
    predictions = response.json().get("predictions")
    if not isinstance(predictions, list) or len(predictions) != n:
        raise SmokeTestFailed(
            f"POST {url} returned {type(predictions).__name__} of the wrong length, expected {n} rows."
        )
    if classes is None:
        got = np.asarray(predictions, dtype=float)
    else:
        got = np.asarray([[p["probabilities"][str(c)] for c in classes] for p in predictions], dtype=float)
    want = expected_scores(expected, classes, n)
    difference = np.abs(got - want)
    worst = float(difference.max()) if difference.size else 0.0
    if not math.isfinite(worst) or worst > tolerance:
        row = int(np.unravel_index(np.nanargmax(difference), difference.shape)[0])
        per_row = difference.max(axis=-1) if difference.ndim > 1 else difference
        raise SmokeTestFailed(
            f"the endpoint's predictions differ from the offline ones: row {row} got {got[row].tolist()}, "
            f"expected {want[row].tolist()} (max difference {worst:.3g} > tolerance {tolerance:g}); "
            f"{int((per_row > tolerance).sum())} of {n} rows differ."
        )
    return SmokeResult(rows=n, max_difference=worst)
