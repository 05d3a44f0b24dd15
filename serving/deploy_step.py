"""What the `deploy_inferenceservice` component does, as a plain function over paths."""

from __future__ import annotations

import hashlib
from typing import Any

from mlworkloads.data.steps import read_parquet
from mlworkloads.data.storage import artifact_uri
from mlworkloads.kube import RUN_LABEL, label_value, resolve_backend, resolve_run_id
from mlworkloads.serving import deploy, local_server
from mlworkloads.serving.errors import ServiceConfigError
from mlworkloads.serving.inferenceservice import ServiceSettings
from mlworkloads.serving.smoke import smoke_test
from mlworkloads.training.export import load

BACKENDS = ("auto", "local", "kserve")


def _labels(model_uri: str, run_id: str, backend: str) -> dict[str, str]:
    """Where the served model came from: the run (the cluster resolves KFP's placeholder) and a
    version digest of its URI."""
    if backend != "local":
        run_id = resolve_run_id(run_id)
    version = hashlib.sha256(model_uri.encode()).hexdigest()[:12]
    return {RUN_LABEL: label_value(run_id), "mlworkloads.io/model-version": version}


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
    labels = _labels(model_uri, run_id, backend)
    service = ServiceSettings(model_uri=artifact_uri(model_uri), labels=labels, **settings)
    test_rows = read_parquet(test_path, "test")
    expected = read_parquet(predictions_path, "predictions")
    if backend == "local":
        outcome = local_server.deploy_local(service, model_path, test_rows, expected)
    else:
        outcome = deploy.deploy_kserve(
            service,
            lambda base, http: smoke_test(base, service.name, test_rows, expected, model.preprocessor, client=http),
            ready_timeout=ready_timeout_seconds,
            poll_interval=poll_interval_seconds,
        )
    deploy.write_json(manifest_path, outcome["manifest"])
    deploy.write_json(status_path, outcome["status"])
    return outcome["url"] or ""


def deploy_model_step(
    *,
    model_uri: str,
    settings: dict[str, Any],
    examples: Any,
    model_path: str = "",
    protocol: str = "v1",
    tolerance: float = 1e-4,
    verify_model_name: str = "",
    backend: str = "kserve",
    run_id: str,
    manifest_path: str,
    status_path: str,
    ready_timeout_seconds: int = 600,
    poll_interval_seconds: int = 5,
) -> str:
    """What the `deploy_model` component does: any model, served by a KServe runtime for its format
    or by a custom predictor container, promoted only once it answers the examples as expected.

    `examples` are `{"request", "expected"}` pairs (`verify.check_examples`); they are sent to
    `verify_model_name` (the service's name by default, which KServe's runtimes serve under).
    The local backend runs a custom predictor's command here on the model at `model_path`
    (`local_server.local_command_server`) and checks the same examples.
    Returns the endpoint URL; writes the applied manifest (or the one that would be) and the status.
    """
    from mlworkloads.serving.verify import check_examples, verify_examples

    backend = resolve_backend(backend, BACKENDS, "kserve", ServiceConfigError)
    try:
        examples = check_examples(examples, protocol)
    except ValueError as err:
        raise ServiceConfigError(str(err)) from err
    labels = _labels(model_uri, run_id, backend)
    service = ServiceSettings(model_uri=artifact_uri(model_uri), labels=labels, **settings)
    name = verify_model_name or service.name
    if backend == "local":
        outcome = local_server.deploy_command_locally(
            service, model_path, lambda base: verify_examples(base, name, examples, protocol, tolerance)
        )
    else:
        outcome = deploy.deploy_kserve(
            service,
            lambda base, http: verify_examples(base, name, examples, protocol, tolerance, client=http),
            ready_timeout=ready_timeout_seconds,
            poll_interval=poll_interval_seconds,
        )
    deploy.write_json(manifest_path, outcome["manifest"])
    deploy.write_json(status_path, outcome["status"])
    return outcome["url"] or ""
