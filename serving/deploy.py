"""Deploying a model to KServe: create or canary-update the InferenceService, verify, promote or roll back.

Talks to the cluster through `KServeClient`. The local backend (the predictor as a real KServe
server on 127.0.0.1, with the same smoke test) is `local_server.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from mlworkloads import artifact_store
from mlworkloads.kube import api_status, forbidden, in_cluster, service_proxy_client
from mlworkloads.serving.errors import DeployFailed, SmokeTestFailed
from mlworkloads.serving.inferenceservice import (
    SERVICE_PORT,
    STORAGE_URI_ANNOTATION,
    ServiceSettings,
    as_dict,
    build,
    canary_predictor_name,
    canary_update,
    predictor_service,
    promoted,
    typed,
)
from mlworkloads.serving.kserve_api import RBAC_HINT
from mlworkloads.serving.kserve_api import call_api as _call
from mlworkloads.serving.kserve_api import client as _client
from mlworkloads.serving.kserve_api import namespace_or_default as _namespace
from mlworkloads.serving.smoke import SmokeResult
from mlworkloads.serving.storage_secret import ensure_storage_secret

log = logging.getLogger(__name__)


def clear_canary(name: str, namespace: str = "", client=None) -> str:
    """Takes all traffic off an unpromoted canary (a deploy step that died mid-way); returns what it did."""
    namespace = _namespace(namespace)
    client = client or _client()
    service = _get_or_none(client, name, namespace)
    if service is None:
        return ""
    spec = service["spec"]
    if spec.get("canary"):
        service["spec"].pop("canary")
        _call(lambda: client.replace(name, typed(service), namespace=namespace), "update", namespace)
        return f"removed the canary of InferenceService {namespace}/{name}"
    if spec["predictor"].get("canaryTrafficPercent") not in (None, 0, 100):
        zero = typed(
            {"metadata": {"name": name, "namespace": namespace}, "spec": {"predictor": {"canaryTrafficPercent": 0}}}
        )
        _call(lambda: client.patch(name, zero, namespace=namespace), "patch", namespace)
        return f"set the canary of InferenceService {namespace}/{name} to 0% of traffic"
    return ""


def endpoint(service: dict[str, Any], tag: str = "latest") -> str:
    """The URL of the revision carrying `tag` (the canary), else the service's URL."""
    predictor = (service.get("status", {}).get("components") or {}).get("predictor") or {}
    for target in predictor.get("traffic") or []:
        if target.get("tag") == tag and target.get("url"):
            return target["url"]
    url = service.get("status", {}).get("url")
    if not url:
        raise DeployFailed(f"InferenceService {service['metadata']['name']} reports no URL yet.")
    return url


def _conditions(service: dict[str, Any]) -> str:
    return "; ".join(
        f"{c.get('type')}={c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip()
        for c in service.get("status", {}).get("conditions") or []
    )


def _check(
    client,
    service: dict[str, Any],
    settings: ServiceSettings,
    namespace: str,
    predictor: str | None,
    smoke: Callable[..., Any],
):
    """Smoke-tests one predictor of `service`.

    Knative: the revision behind the `latest` traffic tag (its own URL). Standard: the
    Deployment of `predictor` through its own Service, since the canary and the stable predictor
    share the service's URL. In a pod (the pipeline step) that Service is reached by its cluster
    DNS name on port 80, where KServe serves it; outside the cluster (a person's kubeconfig),
    through the API server's proxy to it.
    """
    if settings.deployment_mode == "Knative":
        return smoke(endpoint(service), None)
    name = predictor_service(settings.name, predictor or "")
    if in_cluster():
        return smoke(f"http://{name}.{namespace}.svc.cluster.local", None)
    # By the port's number: KServe serves every Standard-mode predictor Service on 80
    # (`constants.CommonDefaultHttpPort`), but names that port after the container's port for a
    # container predictor and after the Service for a model format's runtime.
    with service_proxy_client(client.api_instance.api_client, namespace, name, str(SERVICE_PORT)) as http:
        return smoke(str(http.base_url), http)


def deploy_kserve(
    settings: ServiceSettings,
    verify: Callable[[str, Any], SmokeResult],
    ready_timeout: int = 600,
    poll_interval: int = 5,
    client=None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Creates the service, or updates it as a canary; promotes only a verified canary.

    Args:
        verify: Checks the new model's endpoint: called with its base URL and an HTTP client to
            send through (None: its own); raises SmokeTestFailed when the answers are wrong
            (`smoke.smoke_test` for the built-in predictor, `verify.verify_examples` for any model).

    Raises:
        DeployFailed: the new model never became Ready or failed verification; the service was
            rolled back (canary to 0 and the previous spec restored, or the new service deleted).
    """
    namespace = _namespace(settings.namespace)
    client = client or _client()
    settings = _with_storage_access(client, settings, namespace)
    live = _get_or_none(client, settings.name, namespace)

    smoke = verify
    if live is None:
        service_object = build(settings, namespace)
        manifest = as_dict(service_object)
        created = _call(lambda: client.create(service_object, namespace=namespace), "create", namespace)
        echo(f"created InferenceService {namespace}/{settings.name}")
        try:
            service = _wait(
                client, settings, namespace, created["metadata"].get("generation", 1),
                manifest["spec"]["predictor"].get("name"), ready_timeout, poll_interval,
            )  # fmt: skip
            _check(client, service, settings, namespace, manifest["spec"]["predictor"].get("name"), smoke)
        except (DeployFailed, SmokeTestFailed) as err:
            _call(lambda: client.delete(settings.name, namespace=namespace), "delete", namespace)
            raise DeployFailed(f"the new InferenceService {namespace}/{settings.name} was deleted: {err}") from err
        echo(f"InferenceService {namespace}/{settings.name} is Ready with 100% of traffic")
        return {"manifest": manifest, "status": service["status"], "url": service["status"].get("url")}

    previous_spec = copy.deepcopy(live["spec"])
    manifest, updated = _replace(
        client, settings.name, namespace, lambda current: canary_update(current, settings, namespace)
    )
    generation = updated["metadata"].get("generation")
    echo(
        f"updated InferenceService {namespace}/{settings.name} with a {settings.canary_traffic_percent}% canary "
        f"(generation {generation})"
    )
    try:
        if settings.deployment_mode == "Knative":
            service = _wait(client, settings, namespace, generation, None, ready_timeout, poll_interval)
            result = _check(client, service, settings, namespace, None, smoke)
        else:
            canary = canary_predictor_name(manifest)
            service = _wait_canary(client, settings.name, namespace, canary, ready_timeout, poll_interval)
            result = _check(client, service, settings, namespace, canary, smoke)
        echo(
            f"canary verified: {result.rows} rows answered as expected over {result.protocol}, "
            f"max difference {result.max_difference:.2g}"
        )
    except (DeployFailed, SmokeTestFailed) as err:
        _rollback(client, settings, namespace, previous_spec, echo)
        raise DeployFailed(f"the canary of {namespace}/{settings.name} was rolled back: {err}") from err
    final, promoted_service = _replace(client, settings.name, namespace, lambda current: promoted(current, settings))
    if settings.deployment_mode == "Knative":
        service = _wait(
            client, settings, namespace, promoted_service["metadata"].get("generation"), None, ready_timeout,
            poll_interval,
        )  # fmt: skip
    else:
        service = _wait_rollout(
            client, settings, namespace, final["spec"]["predictor"]["name"], ready_timeout, poll_interval
        )
    echo(f"promoted the canary of {namespace}/{settings.name} to 100% of traffic")
    return {"manifest": final, "status": service["status"], "url": service["status"].get("url")}


def _with_storage_access(client, settings: ServiceSettings, namespace: str) -> ServiceSettings:
    """Gives KServe's storage initializer the keys of KFP's artifact store when the model is in it."""
    store = None if settings.storage_secret_name else artifact_store.store_for(settings.model_uri)
    if store is None or not store.access_key:
        return settings  # the service account's own credentials (IRSA, workload identity) apply
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(client.api_instance.api_client)
    try:
        name = ensure_storage_secret(core, store, namespace)
    except Exception as err:  # noqa: BLE001 - ApiException or a connection error
        hint = forbidden(err, "create", "secrets", namespace, RBAC_HINT.format(ns=namespace))
        raise (hint or err) from err
    return dataclasses.replace(settings, storage_secret_name=name)


#: Attempts of a read-modify-replace that meets a newer version of the service (HTTP 409).
CONFLICT_ATTEMPTS = 5


def _replace(client, name: str, namespace: str, change: Callable[[dict[str, Any]], dict[str, Any]]):
    """Reads the service, applies `change` and replaces it; on a 409 (KServe's controller wrote the
    object in between: status, finalizers) reads it again and retries, as client-go's
    RetryOnConflict does. Returns what was sent and what the API server stored."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        changed = change(_call(lambda: client.get(name, namespace=namespace), "get", namespace))
        try:
            stored = _call(
                lambda body=changed: client.replace(name, typed(body), namespace=namespace), "update", namespace
            )
            return changed, stored
        except Exception as err:  # noqa: BLE001 - the client wraps ApiException in RuntimeError
            if api_status(err) != 409 or attempt == CONFLICT_ATTEMPTS:
                raise
            log.info("InferenceService %s/%s changed while it was updated; reading it again", namespace, name)
    raise AssertionError("unreachable")


def _until(read: Callable[[], Any], done: Callable[[Any], bool], failure: Callable[[Any], str], deadline: float,
           interval: int):  # fmt: skip
    """Calls `read` every `interval` s until `done(what it read)`; at `deadline`, DeployFailed(`failure(last)`)."""
    while True:
        current = read()
        if done(current):
            return current
        if time.monotonic() >= deadline:
            raise DeployFailed(failure(current))
        time.sleep(interval)


def _poll(client, name: str, namespace: str, done: Callable[[dict], bool], what: str, timeout: int, interval: int):
    """Gets the service every `interval` s until `done(service)`; DeployFailed naming `what` if it never is."""
    return _until(
        lambda: _call(lambda: client.get(name, namespace=namespace), "get", namespace),
        done,
        lambda service: (
            f"{what} of InferenceService {namespace}/{name} was not Ready within {timeout} s: {_conditions(service)}"
        ),
        time.monotonic() + timeout,
        interval,
    )


def _ready(service: dict[str, Any]) -> bool:
    conditions = (service.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _wait_canary(client, name: str, namespace: str, canary: str, timeout: int, poll_interval: int) -> dict[str, Any]:
    """Waits until KServe reports the Standard-mode canary `canary` ready.

    The service's Ready condition does not wait for a canary: KServe reports it apart, in
    `status.canaryStatuses` (and the `CanaryPredictorReady` condition). Each model version's
    predictor has a name of its own, so an entry of that name is KServe's word on this canary.
    """

    def canary_ready(service: dict[str, Any]) -> bool:
        entries = (service.get("status") or {}).get("canaryStatuses") or []
        return any(e.get("name") == canary and e.get("ready") for e in entries)

    return _poll(client, name, namespace, canary_ready, f"the canary {canary!r}", timeout, poll_interval)


def _wait_standard(client, name: str, namespace: str, predictor: str, timeout: int, poll_interval: int):
    """Waits until KServe serves the Standard-mode service from `predictor`, Ready.

    Not by generation: in Standard mode KServe copies `status.observedGeneration` from the
    predictor's Deployment, not from the InferenceService (v0.20 `PropagateRawStatus`), so after a
    promotion it stays at the promoted Deployment's own generation (1) for ever. The service's
    address names the predictor KServe last reconciled, and each model version's predictor has a
    name of its own: Ready with this predictor's address is KServe's word on this version.
    """
    service_host = f"{predictor_service(name, predictor)}.{namespace}."

    def serving(service: dict[str, Any]) -> bool:
        address = ((service.get("status") or {}).get("address") or {}).get("url") or ""
        return _ready(service) and address.split("://")[-1].startswith(service_host)

    return _poll(client, name, namespace, serving, f"the predictor {predictor!r}", timeout, poll_interval)


def _wait_rollout(client, settings: ServiceSettings, namespace: str, predictor: str, timeout: int, interval: int):
    """Waits until the stable predictor's Deployment has rolled out to the promoted model, as
    `kubectl rollout status` does: the new template observed, every replica updated and
    available, no old one left; then, within the same time, for the service to be Ready."""
    from kubernetes import client as k8s

    apps = k8s.AppsV1Api(client.api_instance.api_client)
    name = predictor_service(settings.name, predictor)
    started = time.monotonic()

    def read():
        try:
            return apps.read_namespaced_deployment(name, namespace)
        except Exception as err:  # noqa: BLE001 - ApiException or a connection error
            hint = forbidden(err, "get", "deployments.apps", namespace, RBAC_HINT.format(ns=namespace))
            if hint:
                raise hint from err
            if api_status(err) != 404:
                raise
            return None

    def storage_uri(deployment) -> str | None:
        """The model the Deployment's pods serve: a container predictor's STORAGE_URI, or what
        KServe records for a model-format predictor's storage initializer."""
        env = {e.name: e.value for c in deployment.spec.template.spec.containers for e in c.env or []}
        annotations = deployment.spec.template.metadata.annotations or {}
        return env.get("STORAGE_URI") or annotations.get(STORAGE_URI_ANNOTATION)

    def rolled_out(deployment) -> bool:
        if deployment is None:
            return False
        status, wanted = deployment.status, deployment.spec.replicas or 0
        counts = {status.updated_replicas or 0, status.available_replicas or 0, status.replicas or 0, wanted}
        observed = (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
        return storage_uri(deployment) == settings.model_uri and observed and counts == {wanted}

    def failure(deployment) -> str:
        seen = "not found"
        if deployment is not None:
            status, wanted = deployment.status, deployment.spec.replicas or 0
            seen = (
                f"STORAGE_URI {storage_uri(deployment)}, generation {deployment.metadata.generation} observed "
                f"{status.observed_generation}, {status.updated_replicas or 0}/{wanted} updated, "
                f"{status.available_replicas or 0} available, {status.replicas or 0} in all"
            )
        return (
            f"the promoted model of InferenceService {namespace}/{settings.name} did not roll out to "
            f"Deployment {name} within {timeout} s: {seen}"
        )

    _until(read, rolled_out, failure, started + timeout, interval)
    remaining = max(interval, int(timeout - (time.monotonic() - started)))
    return _poll(client, settings.name, namespace, _ready, "the promoted model", remaining, interval)


def _get_or_none(client, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return client.get(name, namespace=namespace)
    except RuntimeError as err:
        if api_status(err) == 404 or "Not Found" in str(err):
            return None
        hint = forbidden(err, "get", "inferenceservices.serving.kserve.io", namespace, RBAC_HINT.format(ns=namespace))
        if hint:
            raise hint from err
        raise


def _wait(
    client, settings: ServiceSettings, namespace: str, generation, predictor: str | None, timeout: int, interval: int
) -> dict[str, Any]:
    """Waits until the service is Ready for `generation` (Knative) or serves from `predictor` (Standard)."""
    name = settings.name
    if settings.deployment_mode != "Knative" and predictor:
        return _wait_standard(client, name, namespace, predictor, timeout, interval)
    try:
        client.wait_isvc_ready(
            name, namespace=namespace, timeout_seconds=timeout, polling_interval=interval,
            expected_generation=generation,
        )  # fmt: skip
    except RuntimeError as err:
        hint = forbidden(err, "get", "inferenceservices.serving.kserve.io", namespace, RBAC_HINT.format(ns=namespace))
        if hint:
            raise hint from err
        service = client.get(name, namespace=namespace)
        raise DeployFailed(
            f"InferenceService {namespace}/{name} generation {generation} was not Ready within {timeout} s: "
            f"{_conditions(service)}"
        ) from err
    return client.get(name, namespace=namespace)


def _rollback(client, settings: ServiceSettings, namespace: str, previous_spec: dict[str, Any], echo) -> None:
    """Traffic back to the previous revision at once, then the previous spec restored."""
    if settings.deployment_mode == "Knative":
        zero = typed(
            {
                "metadata": {"name": settings.name, "namespace": namespace},
                "spec": {"predictor": {"canaryTrafficPercent": 0}},
            }
        )
        _call(lambda: client.patch(settings.name, zero, namespace=namespace), "patch", namespace)
    _replace(client, settings.name, namespace, lambda current: {**current, "spec": previous_spec})
    echo(f"rolled back InferenceService {namespace}/{settings.name} to its previous model")


def write_json(path: str, value: Any) -> None:
    from mlworkloads.data.steps import write_outputs

    write_outputs(texts={path: json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"})
