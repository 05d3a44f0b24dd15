"""Component: deploy any model to KServe (a runtime for its format, or your own predictor) as a verified canary."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_model(
    service_name: str,
    verify_examples: list,
    manifest: Output[Artifact],
    status: Output[Artifact],
    model: Optional[Input[Model]] = None,
    storage_uri: str = "",
    model_format: str = "",
    model_format_version: str = "",
    runtime: str = "",
    protocol_version: str = "",
    image: str = "",
    command: Optional[list] = None,
    args: Optional[list] = None,
    verify_protocol: str = "v1",
    verify_tolerance: float = 0.0001,
    verify_model_name: str = "",
    namespace: str = "",
    backend: str = "auto",
    service_account: str = "",
    image_pull_secrets: Optional[list] = None,
    deployment_mode: str = "Knative",
    cpu: str = "1",
    memory: str = "2Gi",
    gpus: int = 0,
    min_replicas: int = 1,
    max_replicas: int = 3,
    scale_metric: str = "",
    scale_target: int = 0,
    canary_traffic_percent: int = 10,
    logger_url: str = "",
    logger_mode: str = "all",
    timeout_seconds: int = 0,
    node_selector: Optional[dict] = None,
    tolerations: Optional[list] = None,
    ready_timeout_seconds: int = 600,
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
) -> str:
    """Creates or updates a KServe InferenceService for any model, verified before promotion.

    The model is served by the cluster's ServingRuntime for `model_format` (sklearn, xgboost,
    lightgbm, pytorch, huggingface, onnx, ...), or by your own predictor: `image` running
    `command` and `args`, listening on port 8080, with the model at /mnt/models. A new service
    gets all traffic once Ready and verified; a live one is updated as a canary and promoted
    only after the new generation is Ready and answers every example as expected. Otherwise the
    update is rolled back (or the new service deleted) and the step fails saying what differed.

    Args:
        service_name: InferenceService name.
        verify_examples: The held-out requests and the responses expected back, as
            [{"request": <body>, "expected": <response>}, ...]. Bodies go to V1 `:predict` or V2
            `/infer` as `verify_protocol` says; the expected response may name only the keys
            that matter (list lengths must match, numbers may differ by `verify_tolerance`).
        model: The model directory; its URI becomes the service's storage URI.
        storage_uri: Or the model's URI (s3://, gs://, pvc://, hf://, ...).
        model_format: A KServe model format; empty for a custom predictor (`image`).
        model_format_version: The format's version, when the runtime asks for one.
        runtime: A ServingRuntime to use instead of the one KServe selects for the format.
        protocol_version: "v1" or "v2" for the runtime; empty for its default.
        image: A custom predictor's image.
        command: A custom predictor's command.
        args: A custom predictor's arguments.
        verify_protocol: "v1" or "v2": where the examples' requests go.
        verify_tolerance: How far a number in a response may be from the expected one.
        verify_model_name: The model name in the request paths; empty for `service_name`.
        namespace: Namespace; empty for the step's own.
        backend: "auto" (KServe inside a cluster, local otherwise), "kserve" or "local": a custom
            predictor's command run on this machine on the model's local copy (the model's
            directory in place of /mnt/models, `--http_port`/`--grpc_port` appended, as
            KServe's ModelServer reads them), checked with the same examples.
        service_account: Service account with the storage credentials for the model URI.
        image_pull_secrets: Secret names the predictor pods pull the image with (private registry).
        deployment_mode: "Knative" (canary by traffic percent) or "Standard" (spec.canary).
        cpu: CPU per predictor replica.
        memory: Memory per predictor replica.
        gpus: nvidia.com/gpu per replica.
        min_replicas: Minimum replicas.
        max_replicas: Maximum replicas.
        scale_metric: "concurrency" or "rps" in Knative mode, "cpu" or "memory" in Standard mode;
            empty for KServe's default (concurrency, or cpu).
        scale_target: Target of the scale metric; 0 for KServe's default.
        canary_traffic_percent: Traffic share of an update before promotion.
        logger_url: Where KServe's logger sends every request and response: a CloudEvents sink
            (http(s)://) or object storage (s3://bucket/prefix, gs://, abfs://), which its agent
            writes JSON records into itself; `prediction_logs` reads either. Empty for none.
        logger_mode: "all", "request" or "response".
        timeout_seconds: Per-request timeout; 0 for KServe's default.
        node_selector: Node selector of the predictor pods.
        tolerations: Tolerations of the predictor pods.
        ready_timeout_seconds: How long to wait for the new generation to be Ready.
        run_id: The pipeline run id (filled in by KFP), recorded as a label.

    Returns:
        manifest: The InferenceService as applied (JSON).
        status: Its final status (JSON).
        Output: The endpoint URL.
    """
    from mlworkloads.serving.deploy_step import deploy_model_step

    if (model is None) == (not storage_uri):
        raise ValueError("deploy_model needs exactly one of `model` (an artifact) and `storage_uri`.")
    return deploy_model_step(
        model_uri=model.uri if model is not None else storage_uri,
        model_path=model.path if model is not None else "",
        settings={
            "name": service_name,
            "namespace": namespace,
            "image": image,
            "command": command or [],
            "args": args or [],
            "model_format": model_format,
            "model_format_version": model_format_version,
            "runtime": runtime,
            "protocol_version": protocol_version,
            "service_account": service_account,
            "image_pull_secrets": image_pull_secrets or [],
            "deployment_mode": deployment_mode,
            "cpu": cpu,
            "memory": memory,
            "gpus": gpus,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "scale_metric": scale_metric,
            "scale_target": scale_target,
            "canary_traffic_percent": canary_traffic_percent,
            "logger_url": logger_url,
            "logger_mode": logger_mode,
            "timeout_seconds": timeout_seconds,
            "node_selector": node_selector or {},
            "tolerations": tolerations or [],
        },
        examples=verify_examples,
        protocol=verify_protocol,
        tolerance=verify_tolerance,
        verify_model_name=verify_model_name,
        backend=backend,
        run_id=run_id,
        manifest_path=manifest.path,
        status_path=status.path,
        ready_timeout_seconds=ready_timeout_seconds,
    )


with_step_resources(deploy_model, "client")
