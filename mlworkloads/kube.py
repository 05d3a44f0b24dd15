"""Reading Kubernetes API errors the official clients raise, without importing them here.

TrainingClient and KServeClient wrap `ApiException` in `RuntimeError` (sometimes as the cause,
sometimes only as the context); this finds the HTTP status either way.
"""

from __future__ import annotations

import re
from typing import Any


def api_status(err: BaseException) -> int | None:
    """The HTTP status of the API error behind `err`, if there is one."""
    seen: BaseException | None = err
    while seen is not None:
        status = getattr(seen, "status", None)
        if isinstance(status, int):
            return status
        seen = seen.__cause__ or seen.__context__
    return None


def forbidden(err: BaseException, verb: str, resource: str, namespace: str, rbac_hint: str) -> PermissionError | None:
    """A PermissionError naming the missing permission when `err` is a 403, else None."""
    if api_status(err) != 403:
        return None
    return PermissionError(
        f"the pipeline's service account may not {verb} {resource} in namespace {namespace!r} (HTTP 403). {rbac_hint}"
    )


def snake_case_keys(fragment: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes JSON fragment (`{"tolerationSeconds": 5}`) as keyword arguments of the
    client's typed model (`V1Toleration(toleration_seconds=5)`)."""
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in fragment.items()}


def label_value(value: str) -> str:
    """A Kubernetes label value: at most 63 characters of [-A-Za-z0-9_.], alphanumeric at the ends."""
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", value)[:63].strip("-_.")
    return cleaned or "unknown"


def is_name_list(value: Any) -> bool:
    """A list of non-empty object names, as `imagePullSecrets` takes them."""
    return isinstance(value, list) and all(isinstance(name, str) and name for name in value)
