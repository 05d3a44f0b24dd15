"""Verifying any model's endpoint: held-out requests must come back with the expected outputs.

The built-in predictor is checked row by row against its offline predictions (`smoke.py`). A
model served by a KServe runtime or a team's own server is checked by examples the team gives:
each a request body, sent as is (V1 `:predict` or V2 `/infer`), and the response expected back,
compared as JSON within a tolerance on numbers. The expected response may be a part of the
actual one: only the keys it names are compared (so V2's generated `id` need not be known), and
list lengths must match.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx

from mlworkloads.serving.errors import SmokeTestFailed
from mlworkloads.serving.smoke import SmokeResult, post

PROTOCOL_PATHS = {"v1": "/v1/models/{name}:predict", "v2": "/v2/models/{name}/infer"}


def check_examples(examples: Any, protocol: str = "v1") -> list[dict[str, Any]]:
    """The examples as given, refused by name when malformed (before anything is deployed).

    Raises:
        ValueError: naming the example and what it lacks.
    """
    if protocol not in PROTOCOL_PATHS:
        raise ValueError(f"verify_protocol={protocol!r}: expected one of {list(PROTOCOL_PATHS)}.")
    if not isinstance(examples, list) or not examples:
        raise ValueError(
            'verify_examples must be a non-empty list of {"request": <body>, "expected": <response>} objects: '
            "a new model is only promoted once it answers them."
        )
    for i, example in enumerate(examples):
        if not isinstance(example, dict) or set(example) != {"request", "expected"}:
            raise ValueError(f'verify_examples[{i}] must be an object with exactly "request" and "expected".')
        if not isinstance(example["request"], dict):
            raise ValueError(f"verify_examples[{i}].request must be a JSON object (the request body).")
    return examples


def _differences(got: Any, want: Any, tolerance: float, path: str = "") -> Iterator[str]:
    if isinstance(want, dict):
        if not isinstance(got, dict):
            yield f"{path or '.'}: expected an object, got {type(got).__name__}"
            return
        for key, value in want.items():
            if key not in got:
                yield f"{path}.{key}: missing"
            else:
                yield from _differences(got[key], value, tolerance, f"{path}.{key}")
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            length = len(got) if isinstance(got, list) else type(got).__name__
            yield f"{path or '.'}: expected {len(want)} items, got {length}"
            return
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            yield from _differences(a, b, tolerance, f"{path}[{i}]")
    elif isinstance(want, (int, float)) and not isinstance(want, bool):
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(float(got)):
            yield f"{path}: expected {want!r}, got {got!r}"
        elif (difference := abs(float(got) - float(want))) > tolerance:
            yield f"{path}: expected {want!r}, got {got!r} (difference {difference:.3g} > {tolerance:g})"
    elif got != want:
        yield f"{path}: expected {want!r}, got {got!r}"


def verify_examples(
    base_url: str,
    model_name: str,
    examples: list[dict[str, Any]],
    protocol: str = "v1",
    tolerance: float = 1e-4,
    client: httpx.Client | None = None,
) -> SmokeResult:
    """Sends each example's request to the endpoint and compares the response with its expected one.

    Raises:
        SmokeTestFailed: an HTTP error, or a response that differs, naming the example and the
            JSON path of the first differences.
    """
    url = base_url.rstrip("/") + PROTOCOL_PATHS[protocol].format(name=model_name)
    worst = 0.0
    for i, example in enumerate(examples):
        response = post(url, example["request"], client)
        try:
            got = response.json()
        except ValueError as err:
            raise SmokeTestFailed(f"POST {url} (example {i}) answered with no JSON: {response.text[:300]}") from err
        found = list(_differences(got, example["expected"], tolerance))
        if found:
            raise SmokeTestFailed(
                f"POST {url}: example {i}'s response differs from the expected one: "
                + "; ".join(found[:5])
                + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
            )
        worst = max(worst, _largest_difference(got, example["expected"]))
    return SmokeResult(rows=len(examples), max_difference=worst, protocol=f"{protocol}-json")


def _largest_difference(got: Any, want: Any) -> float:
    if isinstance(want, dict) and isinstance(got, dict):
        return max((_largest_difference(got.get(k), v) for k, v in want.items()), default=0.0)
    if isinstance(want, list) and isinstance(got, list):
        return max((_largest_difference(a, b) for a, b in zip(got, want, strict=False)), default=0.0)
    if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(want, bool):
        return abs(float(got) - float(want))
    return 0.0
