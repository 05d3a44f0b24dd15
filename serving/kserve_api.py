"""Talking to KServe's API: the client, the namespace, and 403s that name the missing permission."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mlworkloads.kube import forbidden

RBAC_HINT = (
    "Apply serving/rbac.yaml to that namespace: `mlworkloads rbac -n {ns} --service-account <sa> | kubectl apply -f -`."
)


def client():
    """A KServeClient from KUBECONFIG (read now, not at import), else the pod's service account."""
    from kserve import KServeClient

    return KServeClient(config_file=os.environ.get("KUBECONFIG") or None)


def namespace_or_default(namespace: str) -> str:
    from mlworkloads.kube import pod_namespace

    return namespace or pod_namespace()


def call_api(action: Callable[[], Any], verb: str, namespace: str) -> Any:
    """Runs one KServeClient call; a 403 becomes a PermissionError naming the verb and the fix."""
    try:
        return action()
    except RuntimeError as err:
        hint = forbidden(err, verb, "inferenceservices.serving.kserve.io", namespace, RBAC_HINT.format(ns=namespace))
        if hint:
            raise hint from err
        raise
