"""What the `deploy_inferenceservice` component does, as a plain function over paths."""

from __future__ import annotations

import hashlib
from typing import Any

from mlworkloads.data.steps import read_parquet
from mlworkloads.data.storage import artifact_uri
from mlworkloads.kube import RUN_LABEL, label_value, resolve_backend, resolve_run_id
from mlworkloads.serving import deploy, local_server
from mlworkloads.serving.inferenceservice import ServiceConfigError, ServiceSettings
from mlworkloads.training.export import load

BACKENDS = ("auto", "local", "kserve")


def deploy_step(
    *,
    model_path: str,
    model_uri: str,
    test_path: str,
    predictions_path: str,
    settings: dict[str, Any],
    backend: str,
    run_id: str,
    manifest_path: str,
    status_path: str,
    ready_timeout_seconds: int = 600,
    poll_interval_seconds: int = 5,
) -> str:
    """Deploys, verifies and (on the cluster) promotes or rolls back; returns the endpoint URL.

    The applied manifest and the final status are written to `manifest_path` and
    `status_path` (artifacts, never a large text parameter).
    """
    backend = resolve_backend(backend, BACKENDS, "kserve", ServiceConfigError)
    model = load(model_path)
    version = hashlib.sha256(model_uri.encode()).hexdigest()[:12]
    if backend != "local":
        run_id = resolve_run_id(run_id)
    labels = {RUN_LABEL: label_value(run_id), "mlworkloads.io/model-version": version}
    service = ServiceSettings(model_uri=artifact_uri(model_uri), labels=labels, **settings)
    test_rows = read_parquet(test_path, "test")
    expected = read_parquet(predictions_path, "predictions")
    if backend == "local":
        outcome = local_server.deploy_local(service, model_path, test_rows, expected)
    else:
        outcome = deploy.deploy_kserve(
            service,
            test_rows,
            expected,
            model.preprocessor.feature_columns,
            model.preprocessor.classes,
            ready_timeout=ready_timeout_seconds,
            poll_interval=poll_interval_seconds,
        )
    deploy.write_json(manifest_path, outcome["manifest"])
    deploy.write_json(status_path, outcome["status"])
    return outcome["url"] or ""
