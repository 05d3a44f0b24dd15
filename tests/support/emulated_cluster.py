"""EMULATED Kubernetes API server for tests. Not a cluster: an emulation on 127.0.0.1.

It serves the API paths the official clients (`kubernetes`, kserve's `KServeClient`) call:
custom objects (create, get, list, patch, replace, delete), pods (list by label selector, logs,
follow), and events. One controller plays an operator: the InferenceService controller
(emulated_kserve.py) runs each predictor revision as a local KServe server behind a
traffic-splitting proxy. (PyTorchJobs run on the real test cluster, support/cluster/, with the
real training operator: the emulated one is gone.)

ConfigMaps and Secrets are stored as given. Nothing creates pods here any more (the pod
endpoints answer empty lists); what it does not emulate: scheduling, volumes, authentication,
and admission beyond the InferenceService rules in emulated_kserve.py. The service proxy
reaches Standard-mode predictors only. `deny` makes chosen (verb, resource) pairs
answer 403.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from typing import Any

from support.json_http import JsonHandler

CUSTOM = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)
PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+))?(?:/(?P<sub>log))?$")
EVENTS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$")
CORE = re.compile(
    r"^/api/(?P<version>v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>configmaps|secrets)(?:/(?P<name>[^/]+))?$"
)
SERVICE_PROXY = re.compile(
    r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?P<service>[^/:]+)(?::(?P<port>[^/]+))?/proxy(?P<path>/.*)?$"
)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


class Pod:
    """A pod played by a local process (or left Pending)."""

    def __init__(self, namespace: str, name: str, labels: dict[str, str], log_path: str):
        self.namespace, self.name, self.labels, self.log_path = namespace, name, labels, log_path
        self.phase = "Pending"
        self.process: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.created = now()
        open(log_path, "w").close()

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels,
                "creationTimestamp": self.created,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.name)),
            },
            "spec": {"containers": [{"name": self.labels.get("emulated/container", "main")}]},
            "status": {"phase": self.phase},
        }

    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class EmulatedCluster:
    """The emulated API server plus its controllers. Use as a context manager."""

    def __init__(self, workdir: str, gpus: int = 0):
        self.workdir = workdir
        self.gpus = gpus
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.pods: dict[tuple[str, str], Pod] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: Counter = Counter()  # (verb, resource) -> count, for RBAC checks
        self.deny: set[tuple[str, str]] = set()
        self.lock = threading.RLock()
        from support.emulated_kserve import InferenceServiceController

        self.controllers: dict[str, Any] = {
            "inferenceservices": InferenceServiceController(self),
        }
        self._resource_version = 0
        self.server: http.server.ThreadingHTTPServer | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> EmulatedCluster:
        cluster = self

        class Handler(_Handler):
            pass

        Handler.cluster = cluster
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:
            pods = list(self.pods.values())
        for pod in pods:
            pod.kill()
        self.controllers["inferenceservices"].stop_all()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def write_kubeconfig(self, path: str, namespace: str = "default") -> str:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "emulated",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "emulated", "user": {"token": "emulated-token"}}],
            "contexts": [
                {
                    "name": "emulated",
                    "context": {"cluster": "emulated", "user": "emulated", "namespace": namespace},
                }
            ],
        }
        with open(path, "w") as f:
            json.dump(config, f)
        return path

    # ---- object store --------------------------------------------------------------------

    def next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def record_event(self, namespace: str, kind: str, name: str, reason: str, message: str, type_="Normal"):
        with self.lock:
            stamp = now()
            self.events.append(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {
                        "name": f"{name}.{uuid.uuid4().hex[:8]}",
                        "namespace": namespace,
                        "creationTimestamp": stamp,
                    },
                    "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "count": 1,
                }
            )

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((plural, namespace, name))
            return copy.deepcopy(found) if found else None

    def update_status(self, plural: str, namespace: str, name: str, mutate) -> None:
        with self.lock:
            found = self.objects.get((plural, namespace, name))
            if found is None:
                return
            mutate(found.setdefault("status", {}))
            found["metadata"]["resourceVersion"] = self.next_version()

    def jobs(self, plural: str = "inferenceservices") -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(v) for (p, _, _), v in self.objects.items() if p == plural]

    # ---- request handling ------------------------------------------------------------------

    def authorize(self, verb: str, resource: str) -> None:
        self.calls[(verb, resource)] += 1
        if (verb, resource) in self.deny:
            raise ApiError(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "system:serviceaccount:default:pipeline-runner" '
                f'cannot {verb} resource "{resource}"',
            )

    def handle_custom(self, method: str, m: re.Match, query: dict, body: Any):
        plural, ns, name = m["plural"], m["ns"], m["name"]
        resource = f"{plural}.{m['group']}" if "." in m["group"] else plural
        key = (plural, ns, name)
        controller = self.controllers.get(plural)
        if method == "POST":
            self.authorize("create", resource)
            name = body["metadata"]["name"]
            key = (plural, ns, name)
            if hasattr(controller, "admit"):
                controller.admit(body)
            with self.lock:
                if key in self.objects:
                    raise ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists')
                obj = copy.deepcopy(body)
                meta = obj.setdefault("metadata", {})
                meta.update(
                    namespace=ns,
                    uid=str(uuid.uuid4()),
                    creationTimestamp=now(),
                    generation=1,
                    resourceVersion=self.next_version(),
                )
                self.objects[key] = obj
            controller = self.controllers.get(plural)
            if controller:
                controller.on_create(copy.deepcopy(obj))
            return 201, copy.deepcopy(obj)
        if name is None:
            self.authorize("list", resource)
            with self.lock:
                wanted = _selector(query.get("labelSelector", ""))
                items = [
                    copy.deepcopy(v)
                    for (p, n, _), v in self.objects.items()
                    if p == plural
                    and n == ns
                    and all((v["metadata"].get("labels") or {}).get(k) == val for k, val in wanted.items())
                ]
            return 200, {
                "apiVersion": f"{m['group']}/{m['version']}",
                "kind": "List",
                "items": items,
                "metadata": {"resourceVersion": str(self._resource_version)},
            }
        if method == "GET":
            self.authorize("get", resource)
            obj = self.get_object(plural, ns, name)
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            return 200, obj
        if method == "DELETE":
            self.authorize("delete", resource)
            with self.lock:
                obj = self.objects.pop(key, None)
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            controller = self.controllers.get(plural)
            if controller:
                controller.on_delete(obj)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}
        if method in ("PATCH", "PUT"):
            self.authorize("patch" if method == "PATCH" else "update", resource)
            with self.lock:
                current = self.objects.get(key)
                if current is None:
                    raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
                old_spec = copy.deepcopy(current.get("spec"))
                if method == "PUT":
                    updated = copy.deepcopy(body)
                    updated.setdefault("metadata", {}).update(
                        {k: current["metadata"][k] for k in ("uid", "creationTimestamp", "namespace")}
                    )
                    updated["status"] = current.get("status", {})
                else:
                    updated = _merge_patch(current, body)
                if hasattr(controller, "admit"):
                    controller.admit(updated)
                updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + (
                    updated.get("spec") != old_spec
                )
                updated["metadata"]["resourceVersion"] = self.next_version()
                self.objects[key] = updated
            controller = self.controllers.get(plural)
            if controller and hasattr(controller, "on_update"):
                controller.on_update(copy.deepcopy(updated))
            return 200, copy.deepcopy(updated)
        raise ApiError(405, "MethodNotAllowed", method)

    def container_env(self, ns: str, container: dict[str, Any]) -> dict[str, str]:
        """A container's environment as the kubelet builds it: envFrom, then env with secretKeyRef
        and configMapKeyRef resolved from the stored objects (a missing one is an ApiError)."""

        def data(plural: str, name: str) -> dict[str, str]:
            obj = self.get_object(plural, ns, name)
            if obj is None:
                raise ApiError(404, "NotFound", f'{plural[:-1]} "{name}" not found')
            if plural == "secrets":
                decoded = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
                return {**decoded, **(obj.get("stringData") or {})}
            return obj.get("data") or {}

        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                env.update(data("secrets", source["secretRef"]["name"]))
            elif "configMapRef" in source:
                env.update(data("configmaps", source["configMapRef"]["name"]))
        for entry in container.get("env") or []:
            ref = entry.get("valueFrom") or {}
            if "secretKeyRef" in ref or "configMapKeyRef" in ref:
                plural, selector = ("secrets", ref["secretKeyRef"]) if "secretKeyRef" in ref else (
                    "configmaps", ref["configMapKeyRef"])  # fmt: skip
                values = data(plural, selector["name"])
                if selector["key"] not in values:
                    raise ApiError(
                        404, "NotFound", f"couldn't find key {selector['key']} in {plural[:-1]} {ns}/{selector['name']}"
                    )
                env[entry["name"]] = values[selector["key"]]
            else:
                env[entry["name"]] = entry.get("value", "")
        return env

    def list_pods(self, ns: str, selector: str) -> dict[str, Any]:
        self.authorize("list", "pods")
        wanted = _selector(selector)
        with self.lock:
            items = [
                p.to_dict()
                for (n, _), p in self.pods.items()
                if n == ns and all(p.labels.get(k) == v for k, v in wanted.items())
            ]
        return {"apiVersion": "v1", "kind": "PodList", "items": items, "metadata": {}}


def _selector(selector: str) -> dict[str, str]:
    """`a=b,c=d` -> {"a": "b", "c": "d"} (equality selectors, which is all the clients here send)."""
    return dict(part.split("=", 1) for part in selector.split(",") if "=" in part) if selector else {}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the clients' patch_namespaced_custom_object sends)."""
    if isinstance(patch, list):  # a JSON patch: only "replace"/"add" of whole paths are used
        result = copy.deepcopy(target)
        for op in patch:
            parts = [p for p in op["path"].split("/") if p]
            node = result
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            if op["op"] in ("add", "replace"):
                node[parts[-1]] = op["value"]
            elif op["op"] == "remove":
                node.pop(parts[-1], None)
        return result
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class _Handler(JsonHandler):
    cluster: EmulatedCluster

    def _dispatch(self, method: str) -> None:
        parsed = urllib.parse.urlparse(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        cluster = self.cluster
        try:
            if m := CUSTOM.match(parsed.path):
                code, body = cluster.handle_custom(method, m, query, self._json())
                return self._send(code, body)
            if m := CORE.match(parsed.path):  # stored as they are, like custom objects
                code, body = cluster.handle_custom(method, {**m.groupdict(), "group": ""}, query, self._json())
                return self._send(code, body)
            if (m := PODS.match(parsed.path)) and method == "GET":
                if m["sub"] == "log":
                    return self._log(m["ns"], m["name"], query)
                if m["name"] is None:
                    return self._send(200, cluster.list_pods(m["ns"], query.get("labelSelector", "")))
                cluster.authorize("get", "pods")
                pod = cluster.pods.get((m["ns"], m["name"]))
                if pod is None:
                    raise ApiError(404, "NotFound", f'pods "{m["name"]}" not found')
                return self._send(200, pod.to_dict())
            if m := SERVICE_PROXY.match(parsed.path):
                return self._proxy(method, m)
            if (m := EVENTS.match(parsed.path)) and method == "GET":
                cluster.authorize("list", "events")
                with cluster.lock:
                    items = [e for e in cluster.events if e["metadata"]["namespace"] == m["ns"]]
                return self._send(200, {"apiVersion": "v1", "kind": "EventList", "items": items, "metadata": {}})
            raise ApiError(404, "NotFound", f"the emulated cluster does not serve {method} {parsed.path}")
        except ApiError as err:
            self._send(err.code, err.body())

    def _proxy(self, method: str, m: re.Match) -> None:
        """The API server's service proxy, to a Standard-mode predictor's pods."""
        self.cluster.authorize("create" if method == "POST" else "get", "services/proxy")
        target = self.cluster.controllers["inferenceservices"].endpoint(m["ns"], m["service"])
        if target is None:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{m["service"]}"')
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(
            f"{target}{m['path'] or '/'}",
            data=self.rfile.read(length) if length else None,
            method=method,
            headers={k: v for k, v in self.headers.items() if k.lower() == "content-type"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                code, payload = response.status, response.read()
        except urllib.error.HTTPError as err:
            code, payload = err.code, err.read()
        except OSError as err:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {err}") from err
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _log(self, ns: str, name: str, query: dict) -> None:
        self.cluster.authorize("get", "pods/log")
        pod = self.cluster.pods.get((ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        if pod.phase == "Pending":
            raise ApiError(400, "BadRequest", f'container "pytorch" in pod "{name}" is waiting to start')
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        with open(pod.log_path, "rb") as f:
            if str(query.get("follow", "")).lower() != "true":
                self.wfile.write(f.read())
                return
            while True:
                chunk = f.readline()
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    continue
                if pod.finished() or (pod.namespace, pod.name) not in self.cluster.pods:
                    rest = f.read()
                    if rest:
                        self.wfile.write(rest)
                    return
                time.sleep(0.05)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_PUT(self):
        self._dispatch("PUT")


# ---- shared with the emulated KServe controller -----------------------------------------------


def resolve_command(command: list[str]) -> list[str]:
    """The image's `torchrun`/`python` are this interpreter's: the emulated node runs our venv."""
    if command and command[0] == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *command[1:]]
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return command
