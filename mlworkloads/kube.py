"""Kubernetes helpers shared by the training and serving layers.

- Reading the API errors the official clients raise: TrainingClient and KServeClient wrap
  `ApiException` in `RuntimeError` (sometimes as the cause, sometimes only as the context);
  `api_status` finds the HTTP status either way.
- Where we run (`in_cluster`), label values, and resource requirements merged field by field.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from mlworkloads.errors import AdmissionDenied, RunIdentityError

#: Label on every object a pipeline run creates (training jobs, InferenceServices): the exit
#: handler finds what a failed run left by it, and two runs never touch each other's objects.
RUN_LABEL = "mlworkloads.io/pipeline-run"
#: Resource names Kubernetes treats as accelerators: their requests must equal their limits.
ACCELERATOR_MARKERS = ("gpu", "tpu", "neuron")


def in_cluster() -> bool:
    """Whether this process runs in a Kubernetes pod (the kubelet sets this for every container)."""
    return "KUBERNETES_SERVICE_HOST" in os.environ


def resolve_backend(backend: str, choices: tuple[str, ...], cluster_backend: str, error: type[Exception]) -> str:
    """`backend` checked against `choices`; `auto` is `cluster_backend` in a pod and `local` elsewhere.

    Raises:
        error: (the caller's layer's own) naming the field and the choices.
    """
    if backend not in choices:
        raise error(f"backend={backend!r}: expected one of {list(choices)}.")
    if backend == "auto":
        return cluster_backend if in_cluster() else "local"
    return backend


def cluster_reachable() -> bool:
    """Inside a pod, or pointed at a cluster by KUBECONFIG."""
    return in_cluster() or bool(os.environ.get("KUBECONFIG"))


def _api_error(err: BaseException) -> BaseException | None:
    """The API error (an exception with an HTTP `status`) behind `err`, following its causes."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(getattr(seen, "status", None), int):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def api_status(err: BaseException) -> int | None:
    """The HTTP status of the API error behind `err`, if there is one."""
    found = _api_error(err)
    return found.status if found is not None else None


def api_body(err: BaseException) -> str:
    """The response body of the API error behind `err` (a Status object's JSON), or ""."""
    body = getattr(_api_error(err), "body", None) or ""
    return body.decode(errors="replace") if isinstance(body, bytes) else str(body)


def forbidden(
    err: BaseException, verb: str, resource: str, namespace: str, rbac_hint: str
) -> PermissionError | AdmissionDenied | None:
    """A PermissionError naming the missing permission when `err` is an RBAC 403; an
    AdmissionDenied with the webhook's reason when a webhook refused; else None."""
    if api_status(err) != 403:
        return None
    body = api_body(err)
    try:
        message = json.loads(body).get("message", body)
    except ValueError:
        message = body
    if "admission webhook" in message:
        # e.g. 'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the
        # request: canary is only supported in Standard deployment mode': not a missing permission.
        return AdmissionDenied(f"{verb} {resource} in namespace {namespace!r} refused: {message}")
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


def _is_accelerator(resource: str) -> bool:
    return any(marker in resource for marker in ACCELERATOR_MARKERS)


def merge_resources(defaults: dict[str, str], override: dict[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """Resource requirements: `defaults` as requests and limits, then `override` field by field.

    `override` is a Kubernetes `{"requests": ..., "limits": ...}` (what KFP passes through from
    `task.set_cpu_request(...)` and the like): each resource it names replaces ours in that
    field only, so a task that sets a CPU request keeps our memory and our GPUs. Accelerators
    (nvidia.com/gpu and the like) always have requests equal to limits, as Kubernetes requires.
    """
    override = override or {}
    requests = {**defaults, **{k: str(v) for k, v in (override.get("requests") or {}).items()}}
    limits = {**defaults, **{k: str(v) for k, v in (override.get("limits") or {}).items()}}
    for resource in {*requests, *limits}:
        if _is_accelerator(resource):
            # The task's own accelerator limit wins over the default count, then both fields agree.
            count = (override.get("limits") or {}).get(resource) or (override.get("requests") or {}).get(resource)
            value = str(count) if count is not None else limits.get(resource, requests.get(resource))
            requests[resource] = limits[resource] = value
    return {"requests": requests, "limits": limits}


# ---- the run a step belongs to ---------------------------------------------------------------

#: The label KFP's API server puts on every pod of a run (`SetPodMetadataLabels` in
#: backend/src/apiserver/template/v2_template.go; the scheduled-workflow controller does the same).
KFP_RUN_ID_LABEL = "pipeline/runid"
#: The service-account namespace file every pod has.
POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def is_placeholder(value: Any) -> bool:
    """A KFP runtime placeholder left unsubstituted, such as `{{$.pipeline_job_uuid}}`.

    KFP's backend substitutes these only in task arguments (backend/src/v2/driver/resolve.go);
    a component input's default reaches the pod verbatim (`addDefaultParams` in
    backend/src/v2/component/launcher_v2.go). kfp.local substitutes both.
    """
    return isinstance(value, str) and value.startswith("{{$.")


def api_client():
    """An ApiClient from KUBECONFIG when set, else the pod's service account."""
    from kubernetes import client, config

    if os.environ.get("KUBECONFIG"):
        return config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    config.load_incluster_config()
    return client.ApiClient()


def pod_namespace(default: str = "default") -> str:
    """The namespace of the pod this process runs in (its service account's), else `default`.

    The one place every step finds its own namespace: the jobs it creates, the kfp-launcher
    ConfigMap it reads and the services it deploys land in the same one. (The kubeflow and
    kserve SDKs each have a copy that crashes when the secrets directory exists without the file.)
    """
    try:
        with open(POD_NAMESPACE_FILE, encoding="utf-8") as f:
            return f.read().strip() or default
    except OSError:
        return default


def own_pod_labels(core_api=None) -> dict[str, str]:
    """The labels of the pod this step runs in (KFP sets `KFP_POD_NAME` on every executor)."""
    from kubernetes import client

    name = os.environ.get("KFP_POD_NAME") or os.environ.get("HOSTNAME") or ""
    core = core_api or client.CoreV1Api(api_client())
    return core.read_namespaced_pod(name, pod_namespace()).metadata.labels or {}


def resolve_run_id(run_id: str, argument: str = "run_id", core_api=None) -> str:
    """`run_id` itself, or, when it is the literal placeholder, the run id from the pod's label.

    A team pipeline that calls a component without passing `run_id` leaves KFP's placeholder in
    the input's default; the pod's `pipeline/runid` label then names the run. Without either,
    this refuses: a literal placeholder would give every run the same job name.

    Raises:
        RunIdentityError: naming the argument to pass.
    """
    if not is_placeholder(run_id):
        return run_id
    hint = (
        f"pass {argument}=dsl.PIPELINE_JOB_ID_PLACEHOLDER as a task argument (KFP substitutes placeholders in "
        "task arguments only, not in component defaults)"
    )
    try:
        labels = own_pod_labels(core_api)
    except Exception as err:  # noqa: BLE001 - no cluster, no permission, no such pod
        raise RunIdentityError(
            f"{argument} is the literal {run_id!r} and this pod's labels could not be read ({err}): {hint}."
        ) from err
    value = labels.get(KFP_RUN_ID_LABEL)
    if not value:
        raise RunIdentityError(
            f"{argument} is the literal {run_id!r} and the pod has no {KFP_RUN_ID_LABEL!r} label: {hint}."
        )
    return value


def resolve_task_name(task_name: str, fallback: str) -> str:
    """`task_name`, or `fallback` (the component's name) when it is the literal placeholder.

    Job names also hash the step's output URI, which KFP makes unique per task execution and
    keeps across a retried pod, so the fallback never makes two tasks share a job.
    """
    return fallback if is_placeholder(task_name) or not task_name else task_name


def service_proxy_client(api_client, namespace: str, service: str, port: str, timeout: float = 30.0):
    """An httpx client whose base URL is the API server's proxy to `service`'s `port`.

    `/api/v1/namespaces/{ns}/services/{service}:{port}/proxy/...` reaches the Service's ready
    endpoints from wherever the Kubernetes API is reachable, with the caller's credentials
    (RBAC: `services/proxy`), so a check of one Deployment's pods needs no cluster DNS.
    """
    import ssl

    import httpx

    config = api_client.configuration
    authorization = config.get_api_key_with_prefix("authorization") or config.get_api_key_with_prefix("BearerToken")
    # One SSL context with the CA and the client certificate: httpx (0.28) ignores `cert=` when
    # `verify` is a CA path, and the request then goes out anonymous.
    context = ssl.create_default_context(cafile=config.ssl_ca_cert or None)
    if not config.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return httpx.Client(
        base_url=f"{config.host.rstrip('/')}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy",
        headers={"Authorization": authorization} if authorization else None,
        verify=context,
        timeout=timeout,
    )
