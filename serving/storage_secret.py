"""The Secret through which KServe's storage initializer reaches KFP's artifact store.

KServe's storage initializer takes S3 settings from a Secret named by the InferenceService's
`serving.kserve.io/storageSecretName` annotation (it "takes precedence" over the service
account's secrets): keys `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (inferenceservice-config's
default `s3AccessKeyIDName`/`s3SecretAccessKeyName`) and the endpoint, https and region from its
`serving.kserve.io/s3-*` annotations (pkg/credentials/service_account_credentials.go and
pkg/credentials/s3/{s3_secret,utils}.go, KServe v0.20.0). KFP's own Secret has other key names
(`accesskey`, `secretkey`) and no such annotations, so the deployer keeps a copy in that form.
"""

from __future__ import annotations

import base64
from typing import Any

from mlworkloads.artifact_store import ArtifactStore

SECRET_NAME = "mlworkloads-artifact-store"
STORAGE_SECRET_ANNOTATION = "serving.kserve.io/storageSecretName"


def storage_secret(store: ArtifactStore, name: str = SECRET_NAME) -> dict[str, Any]:
    """The Secret (as the API takes it) that gives KServe's storage initializer `store`."""
    annotations = {"serving.kserve.io/s3-usehttps": "0" if store.endpoint_url.startswith("http://") else "1"}
    if store.endpoint_url:
        annotations["serving.kserve.io/s3-endpoint"] = store.endpoint_url  # with its scheme: KServe reads both
        # An endpoint of its own (MinIO) is addressed path-style: KServe's Python storage
        # initializer does so unless told, its Go agent (a logger writing to the store) only if told.
        annotations["serving.kserve.io/s3-usevirtualbucket"] = "false"
    if store.region:
        annotations["serving.kserve.io/s3-region"] = store.region
    data = {"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "annotations": annotations,
            "labels": {"app.kubernetes.io/managed-by": "mlworkloads"},
        },
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def ensure_storage_secret(core_api, store: ArtifactStore, namespace: str) -> str:
    """Creates or updates the Secret in `namespace`; returns its name for the annotation."""
    from kubernetes.client.exceptions import ApiException

    body = storage_secret(store)
    try:
        core_api.create_namespaced_secret(namespace, body)
    except ApiException as err:
        if err.status != 409:
            raise
        core_api.replace_namespaced_secret(SECRET_NAME, namespace, body)
    return SECRET_NAME
