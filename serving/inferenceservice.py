"""Building the InferenceService from the kserve SDK's typed models."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from typing import Any

from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1LoggerSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
    constants,
)
from kserve.models.v1beta1_logger_storage_spec import V1beta1LoggerStorageSpec
from kubernetes import client as k8s

from mlworkloads.kube import is_name_list, merge_resources, snake_case_keys
from mlworkloads.serving.errors import ServiceConfigError
from mlworkloads.serving.storage_secret import STORAGE_SECRET_ANNOTATION

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
DEPLOYMENT_MODES = ("Knative", "Standard")
LOGGER_MODES = ("all", "request", "response")
#: What the built-in predictor logs per request: everything KServe logs, or the errors only.
PER_REQUEST_LOGS = ("all", "errors")
#: KServe's default storage key of a logger's store (`constants.LoggerDefaultStorageKey`).
LOGGER_STORAGE_KEY = "credentials"
#: Logger URLs KServe's agent sends CloudEvents to, and those it writes into itself (pkg/logger/store.go).
LOGGER_SINK_SCHEMES, LOGGER_STORE_SCHEMES = ("http", "https"), ("s3", "gs", "abfs")
#: The metrics KServe's webhook accepts per mode (`validateAutoScalingCompExtension`, v0.20.0):
#: Knative's autoscaler (KPA) scales on requests, Standard mode's HPA on resources.
SCALE_METRICS = {"Knative": ("concurrency", "rps"), "Standard": ("cpu", "memory")}
MODEL_URI_ANNOTATION = "mlworkloads.io/model-uri"
#: Where KServe's storage initializer puts `STORAGE_URI` for a custom container.
MODEL_MOUNT = "/mnt/models"
#: The predictor's port name: Knative accepts only "http1" or "h2c", and in Standard mode KServe
#: names the Service port after it (the service proxy path uses it).
HTTP_PORT_NAME = "http1"
#: The gRPC port's name: KServe gives a Service port whose name holds "grpc" or "h2c" the
#: `kubernetes.io/h2c` app protocol (`isGrpcPort`, service_reconciler.go, v0.20.0).
GRPC_PORT_NAME = "grpc"
#: The port of every Standard-mode predictor Service (KServe's `constants.CommonDefaultHttpPort`).
SERVICE_PORT = 80
#: Fields KServe's webhook refuses on a Standard-mode canary, which runs fixed replicas
#: (`validateCanarySpecs`, pkg/apis/serving/v1beta1/inference_service_validation.go, v0.20.0).
CANARY_REFUSED_FIELDS = ("maxReplicas", "minReplicas", "scaleMetric", "scaleTarget", "autoScaling")
PROTOCOLS = ("v1", "v2")
#: The built-in predictor's command (the image's `python -m mlworkloads.serving`).
BUILT_IN_COMMAND = ["python", "-m", "mlworkloads.serving"]
#: Where the built-in predictor serves Prometheus metrics (KServe's ModelServer: the HTTP port).
METRICS_PORT, METRICS_PATH = "8080", "/metrics"
#: Where Standard-mode KServe records a model-format predictor's storage URI on its Deployment
#: (the storage initializer itself is added to each pod by KServe's pod webhook).
STORAGE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$")


@dataclasses.dataclass(kw_only=True)
class ServiceSettings:
    """Everything the InferenceService is built from; validated on construction.

    Attributes:
        name: InferenceService name (DNS-1035, at most 45 characters).
        namespace: Namespace; empty for the current one.
        image: Predictor image (see `mlworkloads.images.PREDICTOR_IMAGE`).
        model_uri: The model directory's URI (`storageUri`, fetched by KServe's storage initializer).
        service_account: Service account carrying the storage credentials.
        image_pull_secrets: Secrets the predictor pods pull the image with (a private registry).
        deployment_mode: "Knative" (canary by traffic percent) or "Standard" (`spec.canary`).
        cpu: CPU request and limit.
        memory: Memory request and limit.
        gpus: `nvidia.com/gpu` (requests equal limits); 0 for none.
        resources: Kubernetes `{"requests": ..., "limits": ...}` merged over cpu, memory and
            gpus field by field (accelerator requests always equal their limits).
        min_replicas: Minimum replicas (0 allows scale to zero in Knative mode).
        max_replicas: Maximum replicas.
        scale_metric: "concurrency" or "rps" in Knative mode, "cpu" or "memory" in Standard mode;
            empty for KServe's default (concurrency, or cpu).
        scale_target: Target value of the scale metric; 0 for KServe's default.
        canary_traffic_percent: Share of traffic an update gets before it is promoted.
        logger_url: Where KServe's logger agent sends every request and response: a CloudEvents
            sink (`http(s)://`), or object storage (`s3://bucket/prefix`, `gs://`, `abfs://`),
            which the agent writes itself as JSON records under
            `<prefix>/<namespace>/<service>/predictor/<predictor>/` with the storage credentials
            the predictor has; empty for no logger.
        logger_mode: "all", "request" or "response".
        timeout_seconds: Per-request timeout; 0 for KServe's default.
        grpc_port: Exposes the predictor's V2 gRPC API on this port (Standard mode: KServe adds it
            to the predictor Service, `appProtocol: kubernetes.io/h2c`); 0 for HTTP only.
            Knative serves one port per container, so it is refused there.
        max_batch_size: Largest batch the predictor accepts.
        per_request_logs: What the built-in predictor logs for each request: "all" (KServe's
            access, timing and latency lines) or "errors" (the access lines of 4xx and 5xx
            answers only: ~1.3x the one-row requests/s per replica).
        node_selector: Node selector of the predictor pods.
        tolerations: Tolerations of the predictor pods.
        labels: Labels recording where the model came from (run id, model version).
        storage_secret_name: Secret KServe's storage initializer reads the model with (the
            `serving.kserve.io/storageSecretName` annotation); empty for the service account's.
        model_format: A KServe model format ("sklearn", "xgboost", "lightgbm", "pytorch",
            "huggingface", "onnx", ...): the cluster's ServingRuntime for it serves the model and
            `image`, `command` and `args` are not used. Empty for a container predictor.
        model_format_version: The format's version, when the runtime asks for one.
        runtime: A ServingRuntime to use instead of the one KServe selects for the format.
        protocol_version: "v1" or "v2" for the runtime; empty for its default.
        command: A custom predictor's command; empty for the built-in one (`BUILT_IN_COMMAND`,
            with its arguments). The model is at `MODEL_MOUNT`.
        args: A custom predictor's arguments.
    """

    name: str
    image: str
    model_uri: str
    namespace: str = ""
    service_account: str = ""
    image_pull_secrets: list[str] = dataclasses.field(default_factory=list)
    deployment_mode: str = "Knative"
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)
    min_replicas: int = 1
    max_replicas: int = 3
    scale_metric: str = ""
    scale_target: int = 0
    canary_traffic_percent: int = 10
    logger_url: str = ""
    logger_mode: str = "all"
    timeout_seconds: int = 0
    grpc_port: int = 0
    max_batch_size: int = 4096
    per_request_logs: str = "all"
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    storage_secret_name: str = ""
    model_format: str = ""
    model_format_version: str = ""
    runtime: str = ""
    protocol_version: str = ""
    command: list[str] = dataclasses.field(default_factory=list)
    args: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if not _DNS_1035.match(self.name or ""):
            raise ServiceConfigError(
                f"service name {self.name!r}: expected lower-case letters, digits and '-', starting with a "
                "letter, at most 45 characters."
            )
        if not self.model_uri:
            raise ServiceConfigError("model_uri is empty: the InferenceService needs the model's storage URI.")
        if not is_name_list(self.image_pull_secrets):
            raise ServiceConfigError(
                f"image_pull_secrets={self.image_pull_secrets!r}: expected a list of Secret names."
            )
        if self.deployment_mode not in DEPLOYMENT_MODES:
            raise ServiceConfigError(
                f"deployment_mode={self.deployment_mode!r}: expected one of {list(DEPLOYMENT_MODES)}."
            )
        if self.logger_mode not in LOGGER_MODES:
            raise ServiceConfigError(f"logger_mode={self.logger_mode!r}: expected one of {list(LOGGER_MODES)}.")
        scheme = self.logger_url.partition("://")[0] if "://" in self.logger_url else ""
        if self.logger_url and scheme not in LOGGER_SINK_SCHEMES + LOGGER_STORE_SCHEMES:
            raise ServiceConfigError(
                f"logger_url={self.logger_url!r}: expected a CloudEvents sink ({', '.join(LOGGER_SINK_SCHEMES)}://) "
                f"or object storage ({', '.join(LOGGER_STORE_SCHEMES)}://)."
            )
        allowed = SCALE_METRICS.get(self.deployment_mode, ())
        if self.scale_metric and self.scale_metric not in allowed:
            raise ServiceConfigError(
                f"scale_metric={self.scale_metric!r}: deployment_mode={self.deployment_mode!r} scales on "
                f"{' or '.join(allowed)} (KServe refuses the others)."
            )
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ServiceConfigError(
                f"min_replicas={self.min_replicas}, max_replicas={self.max_replicas}: expected "
                "0 <= min_replicas <= max_replicas and max_replicas >= 1."
            )
        if not 1 <= self.canary_traffic_percent <= 100:
            raise ServiceConfigError(f"canary_traffic_percent={self.canary_traffic_percent}: expected 1 to 100.")
        if not isinstance(self.resources, dict) or set(self.resources) - {"requests", "limits"}:
            raise ServiceConfigError(f"resources={self.resources!r}: expected a dict with 'requests' and/or 'limits'.")
        if self.grpc_port and not (1024 <= self.grpc_port <= 65535 and self.grpc_port != 8080):
            raise ServiceConfigError(
                f"grpc_port={self.grpc_port}: expected a port from 1024 to 65535 other than the HTTP port 8080."
            )
        if self.grpc_port and self.deployment_mode == "Knative":
            raise ServiceConfigError(
                f"grpc_port={self.grpc_port}: Knative serves one port per container (HTTP here); expose gRPC "
                "with deployment_mode='Standard'."
            )
        for name in ("gpus", "scale_target", "timeout_seconds"):
            if getattr(self, name) < 0:
                raise ServiceConfigError(f"{name}={getattr(self, name)}: expected 0 or more.")
        if self.protocol_version and self.protocol_version not in PROTOCOLS:
            raise ServiceConfigError(f"protocol_version={self.protocol_version!r}: expected one of {list(PROTOCOLS)}.")
        for name in ("command", "args"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ServiceConfigError(f"{name}={value!r}: expected a list of strings.")
        if self.model_format and (self.command or self.args):
            raise ServiceConfigError(
                f"model_format={self.model_format!r} serves the model with the cluster's ServingRuntime; "
                "command and args are for a custom predictor image. Set one or the other."
            )
        if (self.runtime or self.model_format_version) and not self.model_format:
            raise ServiceConfigError("runtime and model_format_version choose a ServingRuntime: set model_format too.")
        if self.per_request_logs not in PER_REQUEST_LOGS:
            raise ServiceConfigError(
                f"per_request_logs={self.per_request_logs!r}: expected one of {list(PER_REQUEST_LOGS)}."
            )
        if self.per_request_logs != "all" and not self.built_in:
            raise ServiceConfigError(
                f"per_request_logs={self.per_request_logs!r} is the built-in predictor's option; a ServingRuntime "
                "or a custom command logs as it does (give a custom command its own arguments)."
            )
        if not self.model_format and not self.image:
            raise ServiceConfigError("image is empty: a container predictor needs an image (or set model_format).")

    @property
    def built_in(self) -> bool:
        """Whether this is the built-in predictor (our image's own command and arguments)."""
        return not self.model_format and not self.command


def metrics_annotations(settings: ServiceSettings) -> dict[str, str]:
    """The built-in predictor's Prometheus scrape annotations, as KServe expects them per mode.

    Both name the container's metrics port for KServe (`prometheus.kserve.io/*`). Standard mode
    has no queue-proxy: the pods carry the `prometheus.io/*` annotations a Prometheus with the
    usual pod discovery scrapes, and KServe's own scraping switch is off so that its pod mutator
    does not point them at Knative's queue-proxy port (`metrics_aggregate_injector.go`, v0.20.0).
    In Knative mode KServe's queue-proxy merges its metrics with the container's and the pod
    mutator sets `prometheus.io/*` to the merged port.
    """
    container = {"prometheus.kserve.io/port": METRICS_PORT, "prometheus.kserve.io/path": METRICS_PATH}
    if settings.deployment_mode == "Standard":
        return {
            **container,
            "prometheus.io/scrape": "true",
            "prometheus.io/port": METRICS_PORT,
            "prometheus.io/path": METRICS_PATH,
            "serving.kserve.io/enable-prometheus-scraping": "false",
        }
    return {
        **container,
        "serving.kserve.io/enable-metric-aggregation": "true",
        "serving.kserve.io/enable-prometheus-scraping": "true",
    }


def predictor_spec(settings: ServiceSettings) -> V1beta1PredictorSpec:
    """The predictor: a ServingRuntime for a model format, or a container (ours by default)
    serving the model KServe fetched from `model_uri` into `MODEL_MOUNT`."""
    amounts = {"cpu": settings.cpu, "memory": settings.memory}
    if settings.gpus:
        amounts["nvidia.com/gpu"] = str(settings.gpus)
    resources = k8s.V1ResourceRequirements(**merge_resources(amounts, settings.resources))
    model, containers = None, None
    if settings.model_format:
        model = V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name=settings.model_format, version=settings.model_format_version or None),
            storage_uri=settings.model_uri,
            runtime=settings.runtime or None,
            protocol_version=settings.protocol_version or None,
            resources=resources,
        )
    else:
        args = settings.args
        if settings.built_in:
            args = [
                "--model_name", settings.name, "--model_dir", MODEL_MOUNT, "--http_port", "8080",
                "--max_batch_size", str(settings.max_batch_size),
            ]  # fmt: skip
            if settings.grpc_port:
                args += ["--grpc_port", str(settings.grpc_port)]
            if settings.per_request_logs != "all":
                args += ["--per_request_logs", settings.per_request_logs]
        ports = [k8s.V1ContainerPort(name=HTTP_PORT_NAME, container_port=8080, protocol="TCP")]
        if settings.grpc_port:
            ports.append(k8s.V1ContainerPort(name=GRPC_PORT_NAME, container_port=settings.grpc_port, protocol="TCP"))
        containers = [
            k8s.V1Container(
                name="kserve-container",
                image=settings.image,
                command=settings.command or BUILT_IN_COMMAND,
                args=args or None,
                # STORAGE_URI makes KServe run its storage initializer for a custom container.
                env=[k8s.V1EnvVar(name="STORAGE_URI", value=settings.model_uri)],
                ports=ports,
                resources=resources,
                security_context=k8s.V1SecurityContext(
                    run_as_non_root=True, run_as_user=1000, allow_privilege_escalation=False
                ),
            )
        ]
    return V1beta1PredictorSpec(
        # Standard mode names the predictor's Deployment and Service after this
        # ({isvc}-{name}-predictor); a canary is promoted by taking over the stable name.
        name=predictor_name(settings.model_uri) if settings.deployment_mode == "Standard" else None,
        model=model,
        containers=containers,
        service_account_name=settings.service_account or None,
        image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in settings.image_pull_secrets] or None,
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        scale_metric=settings.scale_metric or None,
        scale_target=settings.scale_target or None,
        timeout=settings.timeout_seconds or None,
        logger=logger_spec(settings),
        annotations=metrics_annotations(settings) if settings.built_in else None,
        node_selector=settings.node_selector or None,
        tolerations=[k8s.V1Toleration(**snake_case_keys(t)) for t in settings.tolerations] or None,
    )


def logger_spec(settings: ServiceSettings) -> V1beta1LoggerSpec | None:
    """KServe's logger: to a sink, or into object storage as JSON records (what `prediction_logs`
    reads), one folder per predictor so that each model version's predictions stay apart."""
    if not settings.logger_url:
        return None
    if settings.logger_url.partition("://")[0] in LOGGER_SINK_SCHEMES:
        return V1beta1LoggerSpec(url=settings.logger_url, mode=settings.logger_mode)
    # KServe's webhook requires path, parameters and key; the agent uses the path and the format,
    # and its credentials come from the predictor's (the storage secret, or its service account).
    storage = V1beta1LoggerStorageSpec(
        path=predictor_name(settings.model_uri),
        parameters={"format": "json"},
        key=LOGGER_STORAGE_KEY,
        service_account_name=settings.service_account or None,
    )
    return V1beta1LoggerSpec(url=settings.logger_url, mode=settings.logger_mode, storage=storage)


def build(settings: ServiceSettings, namespace: str) -> V1beta1InferenceService:
    """A fresh InferenceService with all traffic on this model."""
    return V1beta1InferenceService(
        api_version=f"{constants.KSERVE_GROUP}/{constants.KSERVE_V1BETA1_VERSION}",
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=k8s.V1ObjectMeta(
            name=settings.name,
            namespace=namespace,
            labels={**settings.labels, "app.kubernetes.io/managed-by": "mlworkloads"},
            annotations={
                DEPLOYMENT_MODE_ANNOTATION: settings.deployment_mode,
                MODEL_URI_ANNOTATION: settings.model_uri,
                # Tag routing gives the canary revision a URL of its own for the smoke test.
                "serving.kserve.io/enable-tag-routing": "true",
                **({STORAGE_SECRET_ANNOTATION: settings.storage_secret_name} if settings.storage_secret_name else {}),
            },
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor_spec(settings)),
    )


def as_dict(service: V1beta1InferenceService) -> dict[str, Any]:
    """The object as the API server receives it (camelCase keys, apiVersion kept)."""
    return k8s.ApiClient().sanitize_for_serialization(service)


def typed(obj: dict[str, Any]) -> V1beta1InferenceService:
    """A service held as a dict (as the API returned it) back in the SDK's type, for KServeClient.

    Metadata becomes typed; the spec, already in the API's own JSON form, is carried as is.
    """
    meta = obj["metadata"]
    return V1beta1InferenceService(
        api_version=obj.get("apiVersion") or f"{constants.KSERVE_GROUP}/{constants.KSERVE_V1BETA1_VERSION}",
        kind=obj.get("kind") or constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=k8s.V1ObjectMeta(
            name=meta["name"],
            namespace=meta.get("namespace"),
            labels=meta.get("labels"),
            annotations=meta.get("annotations"),
            resource_version=meta.get("resourceVersion"),
        ),
        spec=obj["spec"],
    )


def predictor_name(model_uri: str, taken: str = "") -> str:
    """The Standard-mode predictor name of a model version: `m` and 6 hex digits of its URI.

    Short enough that `{isvc}-{name}-predictor` fits a 63-character Deployment name for any
    45-character service name; `n...` instead when `taken` (the live predictor) has the same.
    """
    digest = hashlib.sha256(model_uri.encode()).hexdigest()[:6]
    return f"n{digest}" if taken == f"m{digest}" else f"m{digest}"


def predictor_service(service_name: str, predictor: str = "") -> str:
    """The Service KServe creates for a Standard-mode predictor (`constants.PredictorServiceName`)."""
    return f"{service_name}-{predictor}-predictor" if predictor else f"{service_name}-predictor"


def canary_update(live: dict[str, Any], settings: ServiceSettings, namespace: str) -> dict[str, Any]:
    """The live service updated to the new model as a canary taking `canary_traffic_percent`.

    Knative: the new predictor with `canaryTrafficPercent`. Standard (KServe v0.20+): the live
    predictor stays and the new one is the one entry of `spec.canary`, a named predictor that
    KServe merges over the stable one and runs with fixed replicas.
    """
    desired = as_dict(build(settings, namespace))
    updated = copy.deepcopy(live)
    updated["metadata"]["labels"] = desired["metadata"]["labels"]
    updated["metadata"]["annotations"] = {
        **(live["metadata"].get("annotations") or {}),
        **desired["metadata"]["annotations"],
    }
    if settings.deployment_mode == "Knative":
        updated["spec"]["predictor"] = {
            **desired["spec"]["predictor"],
            "canaryTrafficPercent": settings.canary_traffic_percent,
        }
        updated["spec"].pop("canary", None)
    else:
        stable = live["spec"]["predictor"].get("name") or ""
        canary = {k: v for k, v in desired["spec"]["predictor"].items() if k not in CANARY_REFUSED_FIELDS}
        canary["name"] = predictor_name(settings.model_uri, taken=stable)
        updated["spec"]["canary"] = [{"predictor": canary, "trafficPercent": settings.canary_traffic_percent}]
    return updated


def canary_predictor_name(service: dict[str, Any]) -> str:
    """The name of the Standard-mode canary of `service`."""
    (entry,) = service["spec"]["canary"]
    return entry["predictor"]["name"]


def promoted(live: dict[str, Any], settings: ServiceSettings) -> dict[str, Any]:
    """The canary promoted to all traffic.

    Standard mode: the stable predictor takes the canary's spec but keeps its own name, and the
    entry goes. KServe then rolls the stable Deployment (new pods Ready before old ones go, behind
    the same Service and Ingress) and deletes the canary's, which the Ingress never sent traffic
    to. Taking the canary's name instead would spare a restart, but KServe v0.20 deletes the old
    predictor's Service in the predictor's reconcile, before it moves the Ingress to the new one,
    and requests fail in between (tests/reliability/test_deploy_availability.py saw it).
    """
    updated = copy.deepcopy(live)
    if settings.deployment_mode == "Knative":
        updated["spec"]["predictor"].pop("canaryTrafficPercent", None)
    else:
        (canary,) = updated["spec"].pop("canary")
        stable = updated["spec"]["predictor"]
        updated["spec"]["predictor"] = {**stable, **canary["predictor"], "name": stable["name"]}
    return updated
