"""Component: deploy the model to KServe as a verified canary, or roll back."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from mlworkloads.components._spec import with_input_default, with_step_resources
from mlworkloads.images import COMPONENT_IMAGE, PREDICTOR_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_inferenceservice(
    model: Input[Model],
    test: Input[Dataset],
    predictions: Input[Dataset],
    service_name: str,
    manifest: Output[Artifact],
    status: Output[Artifact],
    namespace: str = "",
    backend: str = "auto",
    image: str = "",
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
    grpc_port: int = 0,
    max_batch_size: int = 4096,
    per_request_logs: str = "all",
    node_selector: Optional[dict] = None,
    tolerations: Optional[list] = None,
    ready_timeout_seconds: int = 600,
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
) -> str:
    """Creates or updates a KServe InferenceService serving the model, verified before promotion.

    A new service gets all traffic once Ready and verified. A live one is updated as a canary
    and promoted only after it is Ready for the new generation and the smoke test passes:
    held-out rows sent to the endpoint must return the predictions `evaluate_model` computed
    offline. Otherwise the update is rolled back and the step fails saying what differed.
    The `local` backend serves the model on 127.0.0.1 with KServe and runs the same check.

    Args:
        model: The trained model directory; its URI becomes the service's storage URI.
        test: The raw test split (from `split_dataset`): the smoke test sends its first rows.
        predictions: The offline test predictions (from `evaluate_model`) to compare with.
        service_name: InferenceService name.
        namespace: Namespace; empty for the step's own.
        backend: "auto" (KServe inside a cluster, local otherwise), "kserve" or "local".
        image: Predictor image; the default is fixed when the pipeline is compiled
            (`mlworkloads compile --registry ...`).
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
        grpc_port: Also expose the predictor's V2 gRPC API on this port (Standard mode only:
            KServe adds it to the predictor Service as h2c); 0 for HTTP only.
        max_batch_size: Largest batch the predictor accepts.
        per_request_logs: What the predictor logs for each request: "all" (KServe's access,
            timing and latency lines) or "errors" (only the access lines of 4xx and 5xx
            answers: ~1.3x the one-row requests/s per replica).
        node_selector: Node selector of the predictor pods.
        tolerations: Tolerations of the predictor pods.
        ready_timeout_seconds: How long to wait for the new generation to be Ready.
        run_id: The pipeline run id (filled in by KFP), recorded as a label.

    Returns:
        manifest: The InferenceService as applied (JSON).
        status: Its final status, with the smoke test's result (JSON).
        Output: The endpoint URL.
    """
    from mlworkloads.serving.deploy_step import deploy_step

    return deploy_step(
        model_path=model.path,
        model_uri=model.uri,
        test_path=test.path,
        predictions_path=predictions.path,
        settings={
            "name": service_name,
            "namespace": namespace,
            "image": image,
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
            "grpc_port": grpc_port,
            "max_batch_size": max_batch_size,
            "per_request_logs": per_request_logs,
            "node_selector": node_selector or {},
            "tolerations": tolerations or [],
        },
        backend=backend,
        run_id=run_id,
        manifest_path=manifest.path,
        status_path=status.path,
        ready_timeout_seconds=ready_timeout_seconds,
    )


with_input_default(deploy_inferenceservice, "image", PREDICTOR_IMAGE)
with_step_resources(deploy_inferenceservice, "client")
