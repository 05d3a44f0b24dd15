"""EMULATED KServe controller for the emulated cluster. Not KServe: an emulation on 127.0.0.1.

Admission: `admit` refuses what KServe v0.20's CRD schema and validating webhook refuse for the
shapes this library writes (`spec.canary` must be a list of named predictors without
autoscaling fields, in Standard mode only), ported from `validateCanarySpecs` in
pkg/apis/serving/v1beta1/inference_service_validation.go. Everything else the webhook checks
is not emulated. The real webhook judges the library's objects in
tests/cluster/test_kserve_admission.py; this port stands only for the deploy tests that still
run here, until InferenceServices are served on the test cluster.

Knative mode: each generation of the predictor becomes a "revision": its container command runs
as a local process on a free port, with `/mnt/models` replaced by the `STORAGE_URI` (the storage
initializer's job). A revision is Ready when its server answers `/v1/models/<name>` with
ready=true. As in Knative, traffic moves to a new revision only once it is Ready: with
`canaryTrafficPercent` it takes that share and the previously rolled-out revision keeps the
rest. The service URL is a small proxy splitting requests by those weights; the `latest` and
`prev` traffic tags carry the revisions' own URLs.

Standard mode (KServe's canary_controller): one "Deployment" per named predictor,
`{isvc}-{name}-predictor`, for the stable predictor and each `spec.canary` entry (merged over
the stable one); the canaries' readiness goes to `status.canaryStatuses` and the
`CanaryPredictorReady` condition, Deployments no longer named by the spec are stopped, and the
cluster's service proxy reaches each one by its Service name.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from support.emulated_cluster import free_port, now, resolve_command


class Revision:
    def __init__(self, name: str, generation: int, port: int, process: subprocess.Popen, log_path: str):
        self.name, self.generation, self.port, self.process, self.log_path = name, generation, port, process, log_path
        self.ready = False
        self.failed = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Service:
    """One InferenceService: its revisions, traffic weights and routing proxy."""

    def __init__(self, name: str, namespace: str):
        self.name, self.namespace = name, namespace
        self.revisions: list[Revision] = []
        self.rolled_out: Revision | None = None  # the revision with the stable traffic
        self.weights: list[tuple[Revision, int]] = []
        self.deployments: dict[str, Revision] = {}  # Standard mode: Service name -> its pods
        self.counter = itertools.count()
        self.proxy = _Proxy(self)

    def pick(self) -> Revision | None:
        ticket = next(self.counter) % 100
        for revision, weight in self.weights:
            if ticket < weight:
                return revision
            ticket -= weight
        return None


class InferenceServiceController:
    def __init__(self, cluster):
        self.cluster = cluster
        self.services: dict[tuple[str, str], Service] = {}
        self.lock = threading.RLock()

    # ---- cluster hooks ----------------------------------------------------------------------

    def admit(self, obj: dict[str, Any]) -> None:
        admit(obj)

    def on_create(self, obj: dict[str, Any]) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self.lock:
            self.services[key] = Service(key[1], key[0])
        if _standard(obj):
            self._reconcile_standard(obj)
        else:
            self._new_revision(obj)

    def on_update(self, obj: dict[str, Any]) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        service = self.services.get(key)
        if service is None:
            return
        if _standard(obj):
            self._reconcile_standard(obj)
            return
        latest = service.revisions[-1] if service.revisions else None
        if latest is None or _predictor_template(obj) != latest.template:
            self._new_revision(obj)
        else:
            self._reconcile(obj)

    def on_delete(self, obj: dict[str, Any]) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self.lock:
            service = self.services.pop(key, None)
        if service:
            for revision in [*service.revisions, *service.deployments.values()]:
                revision.stop()
            service.proxy.stop()

    def endpoint(self, namespace: str, service_name: str) -> str | None:
        """The local URL behind a Standard-mode predictor's Service, for the cluster's service proxy."""
        with self.lock:
            for (ns, _), service in self.services.items():
                revision = service.deployments.get(service_name) if ns == namespace else None
                if revision is not None:
                    return revision.url
        return None

    def stop_all(self) -> None:
        for key in list(self.services):
            self.on_delete({"metadata": {"namespace": key[0], "name": key[1]}})

    # ---- revisions -----------------------------------------------------------------------------

    def _start(self, obj: dict[str, Any], template: dict[str, Any], revision_name: str) -> Revision:
        """Runs the predictor container of `template` as a local process: one ready-checked "pod".

        A `STORAGE_URI` with a scheme first goes through KServe's real storage initializer (the
        `kserve-storage` package) with the environment KServe's credential builder gives it; a
        plain local path (a test's model directory) is handed to the server as it is.
        """
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        generation = obj["metadata"].get("generation", 1)
        container = template["containers"][0]
        storage = next((e["value"] for e in container.get("env") or [] if e["name"] == "STORAGE_URI"), "")
        log_path = os.path.join(self.cluster.workdir, f"{ns}-{revision_name}.log")
        port = free_port()
        if "://" in storage:
            models = os.path.join(self.cluster.workdir, f"{ns}-{revision_name}-models")
            failure = self._storage_initializer(obj, storage, models, log_path)
            if failure:
                revision = Revision(revision_name, generation, port, None, log_path)
                revision.template, revision.failed = template, failure
                self.cluster.record_event(ns, "Pod", revision_name, "Failed", failure, "Warning")
                return revision
            storage = models
        args = [storage if a == "/mnt/models" else a for a in container.get("args") or []]
        args = _set_arg(args, "--http_port", str(port))
        args = _set_arg(args, "--grpc_port", str(free_port()))
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                resolve_command(container["command"] + args),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cluster.workdir,
            )
        revision = Revision(revision_name, generation, port, process, log_path)
        revision.template = template
        self.cluster.record_event(ns, "InferenceService", name, "RevisionCreated", f"Created {revision_name}")
        threading.Thread(target=self._probe, args=(ns, name, revision), daemon=True).start()
        return revision

    def _storage_initializer(self, obj: dict[str, Any], uri: str, models: str, log_path: str) -> str:
        """Runs `kserve_storage.Storage.download(uri, models)` as the init container; returns a failure or ""."""
        env = {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            **storage_credentials(self.cluster, obj),
        }
        code = "import sys; from kserve_storage import Storage; Storage.download(sys.argv[1], sys.argv[2])"
        with open(log_path, "ab") as log:
            result = subprocess.run(
                [sys.executable, "-c", code, uri, models], env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120
            )
        if result.returncode == 0:
            return ""
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return f"storage-initializer exited with code {result.returncode} (Init:Error): {f.read()[-600:]}"

    def _new_revision(self, obj: dict[str, Any]) -> None:
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        service = self.services[(ns, name)]
        revision_name = f"{name}-predictor-{len(service.revisions) + 1:05d}"
        revision = self._start(obj, _predictor_template(obj), revision_name)
        service.revisions.append(revision)
        self._reconcile(obj)

    def _reconcile_standard(self, obj: dict[str, Any]) -> None:
        """KServe's Standard mode: a Deployment per named predictor, canaries with fixed traffic shares."""
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        generation = obj["metadata"].get("generation", 1)
        stable = obj["spec"]["predictor"]
        wanted = {_service_name(name, stable.get("name")): (_pod_template(stable), None)}
        for canary in obj["spec"].get("canary") or []:
            merged = {**stable, **canary["predictor"]}  # buildCanaryPredictor: the canary over the stable
            wanted[_service_name(name, canary["predictor"]["name"])] = (_pod_template(merged), canary)
        with self.lock:
            service = self.services.get((ns, name))
            if service is None:
                return
            for svc, (template, _) in wanted.items():
                running = service.deployments.get(svc)
                if running is None or running.template != template:
                    if running is not None:
                        running.stop()
                    service.deployments[svc] = self._start(obj, template, svc)
            for orphan in set(service.deployments) - set(wanted):
                doomed = service.deployments.pop(orphan)
                threading.Timer(3.0, doomed.stop).start()  # drain, as a Deployment's pods terminate
            stable_revision = service.deployments[_service_name(name, stable.get("name"))]
            canaries = [(service.deployments[svc], c) for svc, (_, c) in wanted.items() if c is not None]
            shares = [(r, int(c.get("trafficPercent", 0))) for r, c in canaries if r.ready]
            service.weights = [(stable_revision, 100 - sum(p for _, p in shares)), *shares]
            statuses = [
                {"name": c["predictor"]["name"], "ready": r.ready, "trafficPercent": int(c.get("trafficPercent", 0))}
                for r, c in canaries
            ]
            ready = stable_revision.ready

        def mutate(status: dict[str, Any]) -> None:
            status["observedGeneration"] = generation
            status["url"] = service.proxy.url
            status["address"] = {"url": service.proxy.url}
            status["deploymentMode"] = "Standard"
            condition = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now()}
            if not ready:
                condition.update(reason="PredictorNotReady", message=stable_revision.failed or "not ready")
            status["conditions"] = [dict(condition, type="PredictorReady"), condition]
            if statuses:
                status["canaryStatuses"] = statuses
                all_ready = all(c["ready"] for c in statuses)
                status["conditions"].append(
                    {
                        "type": "CanaryPredictorReady",
                        "status": "True" if all_ready else "False",
                        "reason": "AllCanariesReady" if all_ready else "CanariesNotReady",
                    }
                )
            else:
                status.pop("canaryStatuses", None)

        self.cluster.update_status("inferenceservices", ns, name, mutate)

    def _probe(self, ns: str, name: str, revision: Revision) -> None:
        if revision.process is None:
            return
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if revision.process.poll() is not None:
                with open(revision.log_path, encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-600:]
                revision.failed = f"container exited with code {revision.process.returncode}: {tail}"
                break
            with (
                contextlib.suppress(Exception),
                urllib.request.urlopen(f"{revision.url}/v1/models/{name}", timeout=1) as response,
            ):
                if json.load(response).get("ready"):
                    revision.ready = True
                    break
            time.sleep(0.1)
        else:
            revision.failed = "not ready within 120 s"
        obj = self.cluster.get_object("inferenceservices", ns, name)
        if obj is not None:
            if _standard(obj):
                self._reconcile_standard(obj)
            else:
                self._reconcile(obj)

    def _reconcile(self, obj: dict[str, Any]) -> None:
        """Sets traffic and status from the spec and the revisions' readiness."""
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        with self.lock:
            service = self.services.get((ns, name))
            if service is None:
                return
            latest = service.revisions[-1]
            canary = _canary_percent(obj)
            if latest.ready and canary is None:
                if service.rolled_out is not latest:
                    previous = service.rolled_out
                    service.rolled_out = latest
                    if previous is not None:
                        # Like Knative, drain the old revision before stopping it: requests
                        # already routed to it still complete.
                        threading.Timer(3.0, previous.stop).start()
                service.weights = [(latest, 100)]
            elif latest.ready and service.rolled_out is not None and service.rolled_out is not latest:
                service.weights = [(service.rolled_out, 100 - canary), (latest, canary)]
            elif latest.ready:
                service.rolled_out = latest
                service.weights = [(latest, 100)]
            else:
                service.weights = [(service.rolled_out, 100)] if service.rolled_out else []
            ready = latest.ready and bool(service.weights)
            traffic = []
            for revision, percent in service.weights:
                tag = "latest" if revision is latest else "prev"
                traffic.append(
                    {
                        "revisionName": revision.name,
                        "percent": percent,
                        "tag": tag,
                        "url": revision.url,
                        "latestRevision": revision is latest,
                    }
                )
            if not latest.ready and service.rolled_out is not None:
                traffic.append(
                    {
                        "revisionName": latest.name,
                        "percent": 0,
                        "tag": "latest",
                        "url": latest.url,
                        "latestRevision": True,
                    }
                )
            generation = obj["metadata"].get("generation", 1)
            reason = "" if ready else (latest.failed or "RevisionNotReady")

        def mutate(status: dict[str, Any]) -> None:
            status["observedGeneration"] = generation
            status["url"] = service.proxy.url
            status["address"] = {"url": service.proxy.url}
            status["deploymentMode"] = (obj["metadata"].get("annotations") or {}).get(
                "serving.kserve.io/deploymentMode", "Knative"
            )
            status["components"] = {
                "predictor": {
                    "latestCreatedRevision": latest.name,
                    "latestReadyRevision": next((r.name for r in reversed(service.revisions) if r.ready), None),
                    "latestRolledoutRevision": service.rolled_out.name if service.rolled_out else None,
                    "url": service.proxy.url,
                    "traffic": traffic,
                }
            }
            condition = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now()}
            if reason:
                condition.update(reason="RevisionFailed" if latest.failed else "RevisionNotReady", message=reason)
            predictor_ready = dict(condition, type="PredictorReady")
            status["conditions"] = [predictor_ready, condition]

        self.cluster.update_status("inferenceservices", ns, name, mutate)


def storage_credentials(cluster, obj: dict[str, Any]) -> dict[str, str]:
    """The S3 environment KServe's credential builder gives the storage initializer.

    Only the InferenceService's `serving.kserve.io/storageSecretName` Secret, with
    inferenceservice-config's default key names (pkg/credentials/service_account_credentials.go,
    s3/s3_secret.go `BuildSecretEnvs`, s3/utils.go `BuildS3EnvVars`, KServe v0.20.0); a service
    account's secrets and IRSA are not emulated.
    """
    import base64

    secret_name = (obj["metadata"].get("annotations") or {}).get("serving.kserve.io/storageSecretName")
    secret = cluster.get_object("secrets", obj["metadata"]["namespace"], secret_name) if secret_name else None
    if secret is None:
        return {}
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    annotations = secret["metadata"].get("annotations") or {}
    env = {k: data[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in data}
    endpoint = annotations.get("serving.kserve.io/s3-endpoint", "").strip()
    if endpoint:
        if endpoint.lower().startswith(("http://", "https://")):
            https = "1" if endpoint.lower().startswith("https://") else "0"
            env.update(S3_USE_HTTPS=https, S3_ENDPOINT=endpoint.split("://", 1)[1], AWS_ENDPOINT_URL=endpoint)
        else:
            https = annotations.get("serving.kserve.io/s3-usehttps", "")
            scheme = "http" if https == "0" else "https"
            env.update(S3_ENDPOINT=endpoint, AWS_ENDPOINT_URL=f"{scheme}://{endpoint}")
            if https:
                env["S3_USE_HTTPS"] = https
    if "serving.kserve.io/s3-region" in annotations:
        env["AWS_DEFAULT_REGION"] = annotations["serving.kserve.io/s3-region"]
    return env


def _standard(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode") in (
        "Standard",
        "RawDeployment",
    )


def _service_name(isvc: str, predictor: str | None) -> str:
    """`constants.PredictorServiceName`: `{isvc}-{name}-predictor`, or `{isvc}-predictor` unnamed."""
    return f"{isvc}-{predictor}-predictor" if predictor else f"{isvc}-predictor"


def _pod_template(predictor: dict[str, Any]) -> dict[str, Any]:
    """What a predictor's pods are made of (its name and replica settings only size the Deployment)."""
    ignored = {"name", "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "autoScaling"}
    return {k: copy.deepcopy(v) for k, v in predictor.items() if k not in ignored}


def _predictor_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The Knative-mode predictor that takes the new traffic."""
    predictor = copy.deepcopy(obj["spec"]["predictor"])
    predictor.pop("canaryTrafficPercent", None)
    return predictor


def _canary_percent(obj: dict[str, Any]) -> int | None:
    value = obj["spec"]["predictor"].get("canaryTrafficPercent")
    return None if value is None else int(value)


def _set_arg(args: list[str], flag: str, value: str) -> list[str]:
    if flag in args:
        index = args.index(flag)
        return [*args[: index + 1], value, *args[index + 2 :]]
    return [*args, flag, value]


class _Proxy:
    """The service URL: forwards each request to a revision chosen by the traffic weights."""

    def __init__(self, service: Service):
        outer = service

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def _forward(self):
                revision = outer.pick()
                if revision is None:
                    self.send_response(503)
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(
                    f"{revision.url}{self.path}",
                    data=body,
                    method=self.command,
                    headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type",)},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, payload, kind = response.status, response.read(), response.headers.get("Content-Type")
                except urllib.error.HTTPError as err:
                    status, payload, kind = err.code, err.read(), err.headers.get("Content-Type")
                except OSError:
                    status, payload, kind = 503, b"revision unavailable", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- admission (KServe's CRD schema and validating webhook, the parts this library meets) ------------

CANARY_FIXED_REPLICA_FIELDS = ("maxReplicas", "scaleTarget", "scaleMetric", "autoScaling")


def admit(obj: dict[str, Any]) -> None:
    """Raises ApiError as the API server answers for an InferenceService KServe refuses."""
    from support.emulated_cluster import ApiError

    name = obj["metadata"]["name"]
    canaries = obj.get("spec", {}).get("canary")
    if canaries is None:
        return
    if not isinstance(canaries, list):
        # Structural schema (`+listType=atomic` []CanarySpec): refused by the API server itself.
        raise ApiError(
            422,
            "Invalid",
            f'InferenceService.serving.kserve.io "{name}" is invalid: spec.canary: Invalid value: '
            f'"{type(canaries).__name__}": spec.canary in body must be of type array: "{type(canaries).__name__}"',
        )

    def denied(message: str):
        # 403 Forbidden, as the API server answers for a denying webhook (seen on the real one).
        return ApiError(
            403,
            "Forbidden",
            f'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the request: {message}',
        )

    mode = (obj["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode")
    if canaries and mode != "Standard":
        raise denied("canary is only supported in Standard deployment mode")
    stable = obj["spec"]["predictor"]
    names, total = set(), 0
    for index, canary in enumerate(canaries):
        predictor = canary.get("predictor") or {}
        cname = predictor.get("name") or ""
        if not cname:
            raise denied(f"canary[{index}] predictor.name is required")
        if cname in names:
            raise denied(f"canary predictor.name {cname!r} is duplicated")
        names.add(cname)
        if cname == (stable.get("name") or ""):
            raise denied(f"canary predictor.name {cname!r} conflicts with stable predictor name")
        percent = int(canary.get("trafficPercent", 0))
        if not 0 <= percent <= 100:
            raise denied(f"canary {cname!r} trafficPercent must be between 0 and 100, got {percent}")
        total += percent
        if predictor.get("maxReplicas"):
            raise denied(f"canary {cname!r} must not set maxReplicas (canary uses fixed replicas)")
        for field in ("scaleTarget", "scaleMetric", "autoScaling"):
            if predictor.get(field) is not None:
                raise denied(f"canary {cname!r} must not set {field} (canary uses fixed replicas)")
        if predictor.get("minReplicas") is not None and predictor["minReplicas"] > (stable.get("minReplicas") or 1):
            raise denied(f"canary {cname!r} minReplicas must not exceed stable predictor minReplicas")
    if total > 100:
        raise denied(f"sum of canary trafficPercent values ({total}) must be <= 100")
