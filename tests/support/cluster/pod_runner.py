"""SIMULATION: the test cluster's one node. It stands in for the kubelet and kube-proxy, nothing else.

There is no container engine on these machines, so this agent registers a Node with the real API
server (allocatable CPU, memory and ``nvidia.com/gpu``, so the real scheduler binds a pod or leaves
it Pending as a cluster would) and runs each pod bound to it as local processes:

- init containers one after another, then the containers, restarted per ``restartPolicy``;
- the pod's env (literal, ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``, ``envFrom``,
  ``KUBERNETES_SERVICE_*``) and its volumes at their mount paths (emptyDir, Secret, ConfigMap,
  projected service-account token, downward API, PVC and hostPath as directories), in a mount and
  UTS namespace of its own (``container_exec.py``);
- its own address in the pod network (a /16 of 127/8): a libc shim (``bind_to_pod_ip.c``) makes wildcard binds
  bind to it; ``/etc/hosts`` of the pod names every Service (its cluster IP, or for a headless one
  its ready pods) the way cluster DNS would;
- the pod's status: phase, container states and exit codes, ``Ready`` from the readiness probe;
- logs served on the kubelet's ``/containerLogs`` endpoint over TLS, so ``kubectl logs`` and
  ``read_namespaced_pod_log`` go through the real API server;
- a Service proxy of ours (kube-proxy's job): a listener on each Service's cluster IP and port,
  forwarding to a ready pod. The real kube-proxy and EndpointSlice controller cannot do this here:
  EndpointSlices may not hold loopback addresses. The ``kubernetes`` Service goes to the API server.

What is not simulated: images (``IMAGES`` maps an image's entrypoint to a program on this machine;
our own image is this virtualenv), resource limits (requests are scheduled, not enforced), liveness
probes, ``exec`` probes, node pressure; a container's log spans its restarts (the kubelet keeps one
per instance, and ``previous`` is not told apart). It authenticates as cluster-admin, not as ``system:node``.

    python pod_runner.py --kubeconfig admin.kubeconfig --workdir DIR --api-port 6443 ...
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import http.server
import ipaddress
import json
import logging
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from mlworkloads.images import ALL_IMAGES
from mlworkloads.processes import stop_group
from support.waiting import keep_watching

log = logging.getLogger("pod-runner")


HERE = Path(__file__).resolve().parent
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TERMINATION_GRACE = 30
HEARTBEAT_SECONDS = 10
# How long a pod waits for a missing Secret or ConfigMap before it fails (the kubelet waits forever).
VOLUME_WAIT_SECONDS = 300
PROBE_TIMEOUT = 3


@dataclasses.dataclass(frozen=True)
class Image:
    """How a container of this image runs here: its entrypoint, and extra args for Go programs.

    Go programs make their own system calls, so the bind shim cannot move their listeners to the
    pod's address; ``bind_args`` passes them that address as flags (``{pod_ip}`` is substituted).
    A listener a program offers no address flag for (controller-runtime's webhook server takes
    a port only) binds every address, so two such pods would collide: each port in
    ``wildcard_ports`` is moved to a free port of this machine, passed as ``{port_<n>}``, and the
    Service proxy sends that container port there. A program that reads its listeners from a
    controller-runtime Configuration file instead (Trainer, JobSet) names its mount path in
    ``config_file``: the pod's copy of that file has the listeners on its own address, and the
    program's ``--config`` names that copy.

    Go programs also dial their pod's localhost past the shim, where nothing of the pod listens
    (its containers are on the pod's address). A flag in ``loopback_flags`` (a port the program
    dials on 127.0.0.1, as KServe's agent reaches its model server) is given the port of a relay
    on 127.0.0.1 to that port of the pod's address; a probe in ``probe_env`` (JSON, as the agent
    takes its model server's readiness probe) gets the pod's address as its host.
    """

    entrypoint: dict[str, str]  # the image's executable path -> the program here
    bind_args: tuple[str, ...] = ()
    wildcard_ports: tuple[int, ...] = ()
    command: tuple[str, ...] = ()  # the image's ENTRYPOINT, for a container that sets no command
    config_file: str = ""
    pythonpath: tuple[str, ...] = ()  # where the image's own Python packages are (its PYTHONPATH)
    loopback_flags: tuple[str, ...] = ()
    probe_env: tuple[str, ...] = ()


def bound_to(config_text: str, pod_ip: str) -> str:
    """A controller-runtime Configuration with its health, metrics and webhook listeners on ``pod_ip``."""
    config = yaml.safe_load(config_text) or {}
    for section, key in (("health", "healthProbeBindAddress"), ("metrics", "bindAddress")):
        address = (config.get(section) or {}).get(key)
        if address and address != "0":
            config[section][key] = f"{pod_ip}:{address.rsplit(':', 1)[-1]}"
    config.setdefault("webhook", {})["host"] = pod_ip
    return yaml.safe_dump(config)


def images(bin_dir: Path) -> dict[str, Image]:
    """The image table: image name (no tag) -> how it runs. An image not in it fails to pull.

    Our own images run this virtualenv (``python`` and ``torchrun`` are first on the pod's PATH).
    """
    kserve_source = bin_dir.parent / "src" / "kserve"
    own = {image_name(image): Image({}) for image in ALL_IMAGES.values()}
    return own | {
        "ghcr.io/kubeflow/training-v1/training-operator": Image(
            {"/manager": str(bin_dir / "training_operator")},
            (
                "--metrics-bind-address={pod_ip}:8080",
                "--health-probe-bind-address={pod_ip}:8081",
                "--webhook-server-port={port_9443}",
            ),
            wildcard_ports=(9443,),
        ),
        "kserve/kserve-controller": Image(
            {"/manager": str(bin_dir / "kserve")},
            (
                "--metrics-addr={pod_ip}:8080",
                "--health-probe-addr={pod_ip}:8081",
                "--webhook-port={port_9443}",
            ),
            wildcard_ports=(9443,),
        ),
        # Kubeflow Trainer's controller and the JobSet controller it needs read their listeners
        # from a Configuration file (ConfigMap), moved to the pod's address (``bound_to``).
        "ghcr.io/kubeflow/trainer/trainer-controller-manager": Image(
            {}, command=(str(bin_dir / "trainer"),), config_file="/controller_manager_config.yaml"
        ),
        "us-central1-docker.pkg.dev/k8s-staging-images/jobset/jobset": Image(
            {"/manager": str(bin_dir / "jobset")},
            ("--metrics-bind-address={pod_ip}:8443", "--health-probe-bind-address={pod_ip}:8081"),
            config_file="/controller_manager_config.yaml",
        ),
        # KServe's agent (request logger, batcher), built from KServe's module (cmd/agent): its
        # pod mutator injects it with no command, and the Service sends port 80 to its 9081. A
        # logger into object storage also starts its marshaller on 9083, which it calls itself.
        "kserve/agent": Image(
            {},
            (
                "--port={port_9081}",
                "--log-marshaller-port={port_9083}",
                "--log-marshaller-url=http://127.0.0.1:{port_9083}/marshal",
            ),
            wildcard_ports=(9081, 9083),
            command=(str(bin_dir / "kserve_agent"),),
            loopback_flags=("--component-port",),
            probe_env=("SERVING_READINESS_PROBE",),
        ),
        # Trainer's torch-distributed runtime: its python and torchrun are this virtualenv's.
        "pytorch/pytorch": Image({}),
        # The sidecar KServe's release puts before the controller's metrics (later flags win).
        "quay.io/brancz/kube-rbac-proxy": Image(
            {},
            ("--secure-listen-address={pod_ip}:8443", "--upstream=http://{pod_ip}:8080/"),
            command=(str(bin_dir / "kube_rbac_proxy"),),
        ),
        # KServe's storage initializer: the image's own entrypoint script from the KServe module,
        # run by this virtualenv's python with the kserve-storage package it imports.
        "kserve/storage-initializer": Image(
            {},
            command=(sys.executable, str(kserve_source / "python/storage-initializer/scripts/initializer-entrypoint")),
        ),
        # KServe's scikit-learn runtime (ClusterServingRuntime kserve-sklearnserver): the image's
        # own server package from the KServe module, on this virtualenv's kserve and scikit-learn.
        "kserve/sklearnserver": Image(
            {},
            command=(sys.executable, "-m", "sklearnserver"),
            pythonpath=(str(kserve_source / "python/sklearnserver"),),
        ),
        # The PyTorchJob init container waits for the master's DNS name with busybox's nslookup;
        # here names are in /etc/hosts, so `nslookup` is a getent shim (shims/nslookup).
        "alpine": Image({}),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


# -- the pod's world: env, volumes, hosts ---------------------------------------------------------
class Cluster:
    """Reads of the API the runner needs, and the hosts file every pod shares a view of."""

    def __init__(self, core: client.CoreV1Api, api_port: int):
        self.core = core
        self.api_port = api_port

    def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        data = self.core.read_namespaced_secret(name, namespace).data or {}
        return {k: base64.b64decode(v) for k, v in data.items()}

    def claim_path(self, namespace: str, claim: str) -> Path | None:
        """The host directory of the PersistentVolume a claim is bound to (hostPath or local), if any."""
        volume_name = self.core.read_namespaced_persistent_volume_claim(claim, namespace).spec.volume_name
        if not volume_name:
            return None
        spec = self.core.read_persistent_volume(volume_name).spec
        source = spec.host_path or spec.local
        return Path(source.path) if source is not None else None

    def config_map(self, namespace: str, name: str) -> dict[str, bytes]:
        cm = self.core.read_namespaced_config_map(name, namespace)
        files = {k: v.encode() for k, v in (cm.data or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return files

    def services(self) -> list[client.V1Service]:
        return self.core.list_service_for_all_namespaces().items

    def pods(self) -> list[client.V1Pod]:
        return self.core.list_pod_for_all_namespaces().items


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def selected(service: client.V1Service, pods: list[client.V1Pod]) -> list[client.V1Pod]:
    """The pods a Service selects that have an address (ready ones, unless it publishes not-ready)."""
    selector = service.spec.selector
    if not selector:
        return []
    return [
        p
        for p in pods
        if p.metadata.namespace == service.metadata.namespace
        and p.status.pod_ip
        and not p.metadata.deletion_timestamp
        and all((p.metadata.labels or {}).get(k) == v for k, v in selector.items())
        and (is_ready(p) or service.spec.publish_not_ready_addresses)
    ]


def hosts_file(pod: client.V1Pod, pod_ip: str, services: list[client.V1Service], pods: list[client.V1Pod]) -> str:
    """/etc/hosts of one pod: what cluster DNS would answer it, search path included."""
    namespace = pod.metadata.namespace
    hostname = pod.spec.hostname or pod.metadata.name
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    own = [hostname]
    if pod.spec.subdomain:
        own.insert(0, f"{hostname}.{pod.spec.subdomain}.{namespace}.svc.cluster.local")
    lines.append(f"{pod_ip}\t{' '.join(own)}")

    def names(name: str, ns: str) -> str:
        fqdn = f"{name}.{ns}.svc.cluster.local"
        return " ".join([fqdn, f"{name}.{ns}.svc", f"{name}.{ns}"] + ([name] if ns == namespace else []))

    for service in services:
        name, ns = service.metadata.name, service.metadata.namespace
        if service.spec.cluster_ip and service.spec.cluster_ip != "None":
            lines.append(f"{service.spec.cluster_ip}\t{names(name, ns)}")
            continue
        for member in selected(service, pods):
            lines.append(f"{member.status.pod_ip}\t{names(name, ns)}")
            if member.spec.subdomain == name and member.spec.hostname:
                lines.append(f"{member.status.pod_ip}\t{names(member.spec.hostname + '.' + name, ns)}")
    return "\n".join(lines) + "\n"


def write_files(directory: Path, files: dict[str, bytes], items, mode: int | None) -> None:
    """A Secret's or ConfigMap's keys as files (``items`` picks keys and paths, as the kubelet does)."""
    directory.mkdir(parents=True, exist_ok=True)
    chosen = {i.path: files[i.key] for i in items if i.key in files} if items else files
    for relative, content in chosen.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)  # atomic, as the kubelet's ..data swap is, for readers that watch


def field_value(pod: client.V1Pod, pod_ip: str, path: str) -> str:
    fields = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name or "default",
        "status.podIP": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    if path in fields:
        return fields[path] or ""
    for prefix, values in (
        ("metadata.labels", pod.metadata.labels),
        ("metadata.annotations", pod.metadata.annotations),
    ):
        if path.startswith(prefix + "['"):
            return (values or {}).get(path[len(prefix) + 2 : -2], "")
    raise ValueError(f"fieldRef {path!r} is not supported by the pod runner")


class PodWorld:
    """One pod's files on this machine: its volumes, hosts file, logs."""

    def __init__(self, runner: PodRunner, pod: client.V1Pod, pod_ip: str):
        self.runner, self.pod, self.pod_ip = runner, pod, pod_ip
        self.port_map = {
            port: free_port()
            for c in [*(pod.spec.init_containers or []), *pod.spec.containers]
            for port in getattr(runner.images.get(image_name(c.image)), "wildcard_ports", ())
        }
        self.dir = runner.workdir / "pods" / pod.metadata.uid
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hosts = self.dir / "hosts"
        self.volumes: dict[str, Path] = {}
        self.relays: dict[int, socketserver.ThreadingTCPServer] = {}

    def loopback_port(self, port: int) -> int:
        """A port on 127.0.0.1 whose connections reach ``port`` of this pod (``Image.loopback_flags``)."""
        if port not in self.relays:
            self.relays[port] = relay(("127.0.0.1", 0), lambda: (self.pod_ip, self.port_map.get(port, port)))
        return self.relays[port].server_address[1]

    def close(self) -> None:
        for server in self.relays.values():
            server.shutdown()
            server.server_close()

    def prepare_volumes(self) -> None:
        for volume in self.pod.spec.volumes or []:
            self.volumes[volume.name] = self._volume(volume)

    def _volume(self, volume: client.V1Volume) -> Path:
        ns = self.pod.metadata.namespace
        cluster = self.runner.cluster
        path = self.dir / "volumes" / volume.name
        if volume.empty_dir is not None:
            path.mkdir(parents=True, exist_ok=True)
        elif volume.secret is not None:
            write_files(
                path, cluster.secret(ns, volume.secret.secret_name), volume.secret.items, volume.secret.default_mode
            )
        elif volume.config_map is not None:
            cm = volume.config_map
            write_files(path, cluster.config_map(ns, cm.name), cm.items, cm.default_mode)
        elif volume.projected is not None:
            for source in volume.projected.sources or []:
                self._projection(path, source, volume.projected.default_mode)
        elif volume.downward_api is not None:
            files = {
                i.path: field_value(self.pod, self.pod_ip, i.field_ref.field_path).encode()
                for i in volume.downward_api.items
            }
            write_files(path, files, None, volume.downward_api.default_mode)
        elif volume.persistent_volume_claim is not None:
            # The bound PersistentVolume's directory when it has one (hostPath, local); else the
            # claim is a directory of the node, shared by every pod that mounts it (ReadWriteMany).
            claim = volume.persistent_volume_claim.claim_name
            path = cluster.claim_path(ns, claim) or self.runner.workdir / "claims" / ns / claim
            path.mkdir(parents=True, exist_ok=True)
        elif volume.host_path is not None:
            path = Path(volume.host_path.path)
            path.mkdir(parents=True, exist_ok=True)
        else:
            raise ValueError(f"volume {volume.name!r}: this kind of volume is not supported by the pod runner")
        return path

    def _projection(self, path: Path, source, mode) -> None:
        ns = self.pod.metadata.namespace
        if source.service_account_token is not None:
            token = self.runner.core.create_namespaced_service_account_token(
                self.pod.spec.service_account_name or "default",
                ns,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(
                        audiences=[source.service_account_token.audience]
                        if source.service_account_token.audience
                        else [],
                        expiration_seconds=source.service_account_token.expiration_seconds or 3607,
                        bound_object_ref=client.V1BoundObjectReference(
                            kind="Pod", api_version="v1", name=self.pod.metadata.name, uid=self.pod.metadata.uid
                        ),
                    )
                ),
            )
            write_files(path, {source.service_account_token.path: token.status.token.encode()}, None, mode)
        elif source.config_map is not None:
            cm = source.config_map
            write_files(path, self.runner.cluster.config_map(ns, cm.name), cm.items, mode)
        elif source.secret is not None:
            write_files(path, self.runner.cluster.secret(ns, source.secret.name), source.secret.items, mode)
        elif source.downward_api is not None:
            files = {
                i.path: field_value(self.pod, self.pod_ip, i.field_ref.field_path).encode()
                for i in source.downward_api.items
            }
            write_files(path, files, None, mode)

    def env(self, container: client.V1Container) -> dict[str, str]:
        ns = self.pod.metadata.namespace
        cluster = self.runner.cluster
        env = {
            "PATH": self.runner.path,
            "HOME": "/root",
            "HOSTNAME": self.pod.spec.hostname or self.pod.metadata.name,
            "KUBERNETES_SERVICE_HOST": self.runner.kubernetes_service_ip,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "LD_PRELOAD": str(self.runner.bind_shim),
            "MLWORKLOADS_POD_IP": self.pod_ip,
        }
        image = self.runner.images.get(image_name(container.image))
        if image and image.pythonpath:
            env["PYTHONPATH"] = ":".join(image.pythonpath)
        for source in container.env_from or []:
            prefix = source.prefix or ""
            if source.secret_ref is not None:
                values = cluster.secret(ns, source.secret_ref.name)
            else:
                values = cluster.config_map(ns, source.config_map_ref.name)
            env.update({prefix + k: v.decode() for k, v in values.items()})
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = var.value or ""
                continue
            ref = var.value_from
            if ref.secret_key_ref is not None:
                env[var.name] = cluster.secret(ns, ref.secret_key_ref.name)[ref.secret_key_ref.key].decode()
            elif ref.config_map_key_ref is not None:
                env[var.name] = cluster.config_map(ns, ref.config_map_key_ref.name)[ref.config_map_key_ref.key].decode()
            elif ref.field_ref is not None:
                env[var.name] = field_value(self.pod, self.pod_ip, ref.field_ref.field_path)
            elif ref.resource_field_ref is not None:
                env[var.name] = "1"
        for name in image.probe_env if image else ():
            if env.get(name):
                env[name] = json.dumps(self._probe_on_pod_address(json.loads(env[name])))
        return env

    def _probe_on_pod_address(self, probe: dict) -> dict:
        for handler in ("tcpSocket", "httpGet"):
            if probe.get(handler) is not None:
                probe[handler]["host"] = self.pod_ip
        return probe

    def argv(self, container: client.V1Container, env: dict[str, str]) -> list[str]:
        image = self.runner.images.get(image_name(container.image))
        command = list(container.command or (image.command if image else ()))
        args = list(container.args or [])
        if not command:
            raise ValueError(
                f"container {container.name!r}: image {container.image} has no command and no entrypoint here"
            )
        if image:
            command[0] = image.entrypoint.get(command[0], command[0])
            args = self._to_loopback(args, image.loopback_flags)
            ports = {f"port_{port}": moved for port, moved in self.port_map.items()}
            args += [a.format(pod_ip=self.pod_ip, **ports) for a in image.bind_args]
            if image.config_file and self.config_copy(container).exists():
                config_arg = f"--config={image.config_file}"
                args = [f"--config={self.config_copy(container)}" if a == config_arg else a for a in args]
        # $(VAR) references in command and args are expanded from the container's env, as the kubelet does.
        expand = lambda s: _expand(s, env)  # noqa: E731
        return [expand(a) for a in command + args]

    def _to_loopback(self, args: list[str], flags: tuple[str, ...]) -> list[str]:
        """``args`` with each port given to one of ``flags`` replaced by its loopback relay's."""
        args = list(args)
        for i, arg in enumerate(args):
            for flag in flags:
                if arg == flag and i + 1 < len(args):
                    args[i + 1] = str(self.loopback_port(int(args[i + 1])))
                elif arg.startswith(flag + "="):
                    args[i] = f"{flag}={self.loopback_port(int(arg.split('=', 1)[1]))}"
        return args

    def config_copy(self, container: client.V1Container) -> Path:
        return self.dir / f"{container.name}.config.yaml"

    def mounts(self, container: client.V1Container) -> list[dict[str, Any]]:
        mounts = [{"source": str(self.hosts), "target": "/etc/hosts"}]
        image = self.runner.images.get(image_name(container.image))
        for mount in container.volume_mounts or []:
            source = self.volumes[mount.name]
            if mount.sub_path:
                source = source / mount.sub_path
                if not source.exists():
                    source.mkdir(parents=True)
            if image and image.config_file and mount.mount_path == image.config_file and source.is_file():
                # Not mounted: the file sits at the image's root, which is never overlaid
                # (container_exec.py); the program's --config is pointed at the pod's copy instead.
                self.config_copy(container).write_text(bound_to(source.read_text(), self.pod_ip))
                continue
            mounts.append({"source": str(source), "target": mount.mount_path, "readOnly": bool(mount.read_only)})
        return mounts


def _expand(text: str, env: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i:]:
            end = text.index(")", i)
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# -- running a pod ------------------------------------------------------------------------------
class RunningPod:
    def __init__(self, runner: PodRunner, pod: client.V1Pod, pod_ip: str):
        self.runner = runner
        self.pod = pod
        self.world = PodWorld(runner, pod, pod_ip)
        self.stopping = threading.Event()
        self.processes: dict[str, subprocess.Popen] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.init_statuses: dict[str, dict[str, Any]] = {}
        self.restarts: dict[str, int] = {}
        self.ready: dict[str, bool] = {}
        self.started_at = now()
        self.lock = threading.Lock()

    @property
    def key(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"

    def log_path(self, container: str) -> Path:
        return self.world.dir / "logs" / f"{container}.log"

    # status ---------------------------------------------------------------------------------
    def _container_status(
        self, container: client.V1Container, state: dict[str, Any], ready: bool = False
    ) -> dict[str, Any]:
        return {
            "name": container.name,
            "image": container.image,
            "imageID": "",
            "ready": ready,
            "started": "running" in state,
            "restartCount": self.restarts.get(container.name, 0),
            "state": state,
        }

    def report(self, phase: str, reason: str = "", message: str = "") -> None:
        spec = self.pod.spec
        initialized = all(
            "terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0
            for s in self.init_statuses.values()
        ) and len(self.init_statuses) == len(spec.init_containers or [])
        ready = (
            phase == "Running"
            and all(s["ready"] for s in self.statuses.values())
            and len(self.statuses) == len(spec.containers)
        )
        conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": self.started_at},
            {"type": "Initialized", "status": str(initialized), "lastTransitionTime": now()},
            {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": now()},
            {"type": "Ready", "status": str(ready), "lastTransitionTime": now()},
        ]
        status = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.world.pod_ip,
            "podIPs": [{"ip": self.world.pod_ip}],
            "startTime": self.started_at,
            "conditions": conditions,
            "initContainerStatuses": list(self.init_statuses.values()) or None,
            "containerStatuses": list(self.statuses.values()),
            "reason": reason or None,
            "message": message or None,
        }
        with contextlib.suppress(ApiException):
            self.runner.core.patch_namespaced_pod_status(
                self.pod.metadata.name, self.pod.metadata.namespace, {"status": status}
            )

    # processes ----------------------------------------------------------------------------
    def _start(self, container: client.V1Container) -> subprocess.Popen:
        env = self.world.env(container)
        spec = {
            "mounts": self.world.mounts(container),
            "scratch": str(self.world.dir / f"{container.name}.scratch"),
            "hostname": self.pod.spec.hostname or self.pod.metadata.name,
            "workingDir": container.working_dir or "",
            "env": env,
            "argv": self.world.argv(container, env),
        }
        spec_path = self.world.dir / f"{container.name}.json"
        spec_path.write_text(json.dumps(spec))
        Path(spec["scratch"]).mkdir(exist_ok=True)
        log_path = self.log_path(container.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "--",
                    sys.executable,
                    str(HERE / "container_exec.py"),
                    str(spec_path),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _terminated(self, code: int, started: str) -> dict[str, Any]:
        return {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now(),
            }
        }

    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # a pod the runner cannot start fails, as a kubelet's would
            log.exception("pod %s failed to start", self.key)
            self.report("Failed", "StartError", str(error))
        finally:
            self.world.close()
            self.runner.finished(self)

    def _prepare_volumes(self) -> None:
        """As the kubelet does: a Secret or ConfigMap that does not exist yet is waited for (the pod
        stays Pending, ContainerCreating), not a failure; it may be created after the pod."""
        deadline = time.monotonic() + VOLUME_WAIT_SECONDS
        while True:
            try:
                self.world.prepare_volumes()
                return
            except ApiException as error:
                if error.status != 404 or time.monotonic() > deadline or self.stopping.is_set():
                    raise
                self.report("Pending", "ContainerCreating", f"MountVolume.SetUp failed: {error.reason}")
                self.stopping.wait(1.0)

    def _run(self) -> None:
        spec = self.pod.spec
        self._prepare_volumes()
        self.runner.refresh_hosts()
        self.report("Pending")
        if self._pull_failed():
            return
        policy = spec.restart_policy or "Always"
        for container in spec.init_containers or []:
            while True:
                started = now()
                self.init_statuses[container.name] = self._container_status(
                    container, {"running": {"startedAt": started}}
                )
                self.report("Pending")
                code = self._wait(self._start(container), container.name)
                if self.stopping.is_set():
                    return
                self.init_statuses[container.name] = self._container_status(container, self._terminated(code, started))
                if code == 0:
                    break
                if policy == "Never":
                    self.report("Failed", message=f"init container {container.name} exited with {code}")
                    return
                self.restarts[container.name] = self.restarts.get(container.name, 0) + 1
                self.report("Pending")
                if self.stopping.wait(min(10.0, 0.5 * 2 ** self.restarts[container.name])):
                    return
        for container in spec.containers:
            self._launch(container)
        self.report("Running")
        threading.Thread(target=self._probe_loop, daemon=True).start()
        self._supervise(policy)

    def _pull_failed(self) -> bool:
        """An image the table does not know stays unpulled, as a registry without it leaves a pod:
        Pending, the container waiting in ErrImagePull then ImagePullBackOff, until it is deleted."""
        spec = self.pod.spec
        missing = [
            c for c in (spec.init_containers or []) + spec.containers if image_name(c.image) not in self.runner.images
        ]
        if not missing:
            return False
        for reason in ("ErrImagePull", "ImagePullBackOff"):
            for container in missing:
                message = (
                    f'Back-off pulling image "{container.image}"'
                    if reason == "ImagePullBackOff"
                    else (f'Failed to pull image "{container.image}": not found')
                )
                statuses = self.init_statuses if container in (spec.init_containers or []) else self.statuses
                statuses[container.name] = self._container_status(
                    container, {"waiting": {"reason": reason, "message": message}}
                )
            self.report("Pending")
            if self.stopping.wait(2.0):
                break
        self.stopping.wait()
        return True

    def _launch(self, container: client.V1Container) -> None:
        started = now()
        self.processes[container.name] = self._start(container)
        self.ready[container.name] = container.readiness_probe is None
        self.statuses[container.name] = self._container_status(
            container, {"running": {"startedAt": started}}, self.ready[container.name]
        )
        self.statuses[container.name]["_started"] = started

    def _wait(self, process: subprocess.Popen, name: str) -> int:
        while process.poll() is None:
            if self.stopping.wait(0.2):
                self._stop_process(process)
                break
        return process.returncode if process.returncode is not None else -1

    def _supervise(self, policy: str) -> None:
        containers = {c.name: c for c in self.pod.spec.containers}
        done: dict[str, int] = {}
        while not self.stopping.is_set() and len(done) < len(containers):
            changed = False
            for name, process in list(self.processes.items()):
                if name in done or process.poll() is None:
                    continue
                code = process.returncode
                started = self.statuses[name].pop("_started", now())
                if policy == "Always" or (policy == "OnFailure" and code != 0):
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    self.statuses[name] = self._container_status(
                        containers[name], {"waiting": {"reason": "CrashLoopBackOff"}}
                    ) | {"lastState": self._terminated(code, started)}
                    self.report("Running")
                    if self.stopping.wait(min(10.0, 0.5 * 2 ** self.restarts[name])):
                        return
                    self._launch(containers[name])
                else:
                    done[name] = code
                    self.statuses[name] = self._container_status(containers[name], self._terminated(code, started))
                changed = True
            if changed:
                self.report("Running")
            self.stopping.wait(0.2)
        if self.stopping.is_set():
            return
        self.report("Succeeded" if all(code == 0 for code in done.values()) else "Failed")

    def _probe_loop(self) -> None:
        containers = {c.name: c for c in self.pod.spec.containers}
        started = time.monotonic()
        while not self.stopping.is_set():
            changed = False
            for name, container in containers.items():
                probe = container.readiness_probe
                if probe is None or self.processes.get(name) is None or self.processes[name].poll() is not None:
                    continue
                if time.monotonic() - started < (probe.initial_delay_seconds or 0):
                    continue
                ok = self._probe(container, probe)
                if ok != self.ready.get(name):
                    self.ready[name] = ok
                    self.statuses[name]["ready"] = ok
                    changed = True
            if changed:
                self.report("Running")
            self.stopping.wait(1.0)

    def _probe(self, container: client.V1Container, probe) -> bool:
        def port(value) -> int:
            if isinstance(value, int) or str(value).isdigit():
                number = int(value)
            else:
                number = next(p.container_port for p in container.ports or [] if p.name == value)
            return self.world.port_map.get(number, number)

        try:
            if probe.http_get is not None:
                scheme = (probe.http_get.scheme or "HTTP").lower()
                url = f"{scheme}://{self.world.pod_ip}:{port(probe.http_get.port)}{probe.http_get.path or '/'}"
                context = ssl._create_unverified_context() if scheme == "https" else None
                import urllib.request

                headers = {h.name: h.value for h in probe.http_get.http_headers or []}
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT, context=context) as response:
                    return 200 <= response.status < 400
            if probe.tcp_socket is not None:
                with socket.create_connection((self.world.pod_ip, port(probe.tcp_socket.port)), timeout=PROBE_TIMEOUT):
                    return True
        except Exception:
            return False
        return True  # exec probes are not simulated: counted as passing

    def _stop_process(self, process: subprocess.Popen, grace: float = TERMINATION_GRACE) -> None:
        stop_group(process, grace)

    def stop(self) -> None:
        """Deletion: SIGTERM every container, SIGKILL after the grace period."""
        self.stopping.set()
        grace = self.pod.spec.termination_grace_period_seconds
        for process in self.processes.values():
            self._stop_process(process, TERMINATION_GRACE if grace is None else grace)


# -- the Service proxy (ours, in place of kube-proxy) --------------------------------------------
class ServiceProxy:
    """Listens on every Service's cluster IP and port; each connection goes to a ready pod."""

    def __init__(self, runner: PodRunner):
        self.runner = runner
        self.listeners: dict[tuple[str, int], socketserver.ThreadingTCPServer] = {}
        self.routes: dict[tuple[str, int], list[tuple[str, int]]] = {}
        self.turn = 0

    def update(self, services: list[client.V1Service], pods: list[client.V1Pod]) -> None:
        routes: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for service in services:
            ip = service.spec.cluster_ip
            if not ip or ip == "None":
                continue
            for port in service.spec.ports or []:
                if service.metadata.namespace == "default" and service.metadata.name == "kubernetes":
                    routes[(ip, port.port)] = [("127.0.0.1", self.runner.api_port)]
                    continue
                backends = []
                for pod in selected(service, pods):
                    target = port.target_port if port.target_port is not None else port.port
                    if not str(target).isdigit():
                        named = [
                            p.container_port for c in pod.spec.containers for p in c.ports or [] if p.name == target
                        ]
                        if not named:
                            continue
                        target = named[0]
                    backends.append((pod.status.pod_ip, self.runner.container_port(pod, int(target))))
                routes[(ip, port.port)] = backends
        self.routes = routes
        for address in routes:
            if address not in self.listeners:
                self._listen(address)
        for address in set(self.listeners) - set(routes):
            self.listeners.pop(address).shutdown()

    def _listen(self, address: tuple[str, int]) -> None:
        def backend() -> tuple[str, int] | None:
            backends = self.routes.get(address) or []
            if not backends:
                return None  # no ready endpoint: the connection is closed, as kube-proxy rejects it
            self.turn += 1
            return backends[self.turn % len(backends)]

        self.listeners[address] = relay(address, backend)


def relay(address: tuple[str, int], backend: Callable[[], tuple[str, int] | None]) -> socketserver.ThreadingTCPServer:
    """A listener on ``address`` that pipes each connection to ``backend()`` (None: closes it)."""

    class Forward(socketserver.BaseRequestHandler):
        def handle(self):
            target = backend()
            if target is None:
                return
            with contextlib.suppress(OSError), socket.create_connection(target, timeout=10) as upstream:
                upstream.settimeout(None)
                pump = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
                pump.start()
                _pipe(self.request, upstream)
                pump.join()

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(address, Forward)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


# -- the kubelet's log endpoint -------------------------------------------------------------------
def serve_logs(runner: PodRunner, cert: str, key: str, ca: str) -> int:
    class Logs(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "containerLogs":
                self.send_error(404)
                return
            _, ns, name, container = parts
            query = urllib.parse.parse_qs(url.query)
            path = runner.log_file(ns, name, container)
            if path is None:
                self.send_error(404, f"pod {ns}/{name} is not on this node")
                return
            if not path.exists():
                # The kubelet's answer for a container that has not started (an init container runs).
                self.send_error(400, f'container "{container}" in pod "{name}" is waiting to start: PodInitializing')
                return
            lines = path.read_bytes().splitlines(keepends=True)
            if "tailLines" in query:
                lines = lines[-int(query["tailLines"][0]) :] if int(query["tailLines"][0]) else []
            follow = query.get("follow", ["false"])[0] == "true"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            with contextlib.suppress(OSError):
                if lines:
                    chunk(b"".join(lines))
                if follow:
                    with open(path, "rb") as f:
                        f.seek(0, os.SEEK_END)
                        while runner.is_running(ns, name):
                            data = f.read()
                            if data:
                                chunk(data)
                            else:
                                time.sleep(0.2)
                        if data := f.read():
                            chunk(data)
                self.wfile.write(b"0\r\n\r\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Logs)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_REQUIRED  # the API server's kubelet-client certificate
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


# -- the agent ----------------------------------------------------------------------------------
class PodRunner:
    def __init__(self, args: argparse.Namespace):
        config.load_kube_config(args.kubeconfig)
        self.core = client.CoreV1Api()
        self.coordination = client.CoordinationV1Api()
        self.node = args.node
        self.workdir = Path(args.workdir)
        self.api_port = args.api_port
        self.kubernetes_service_ip = args.kubernetes_service_ip
        self.cluster = Cluster(self.core, self.api_port)
        self.images = images(Path(args.bin_dir))
        self.bind_shim = Path(args.bind_shim)
        shims = HERE / "shims"
        self.path = os.pathsep.join(
            [str(shims), str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        )
        self.capacity = {
            "cpu": args.cpu,
            "memory": args.memory,
            "pods": "110",
            "nvidia.com/gpu": str(args.gpus),
            "ephemeral-storage": "100Gi",
        }
        self.pods: dict[str, RunningPod] = {}
        self.done: dict[str, RunningPod] = {}
        network = ipaddress.ip_network(args.pod_network)
        self.free_ips = (str(ip) for ip in network.hosts() if ip > network.network_address + 1)
        self.lock = threading.Lock()
        self.proxy = ServiceProxy(self)
        self.kubelet_port = serve_logs(self, args.serving_cert, args.serving_key, args.ca)

    # bookkeeping --------------------------------------------------------------------------
    def log_file(self, ns: str, name: str, container: str) -> Path | None:
        """Where ``container``'s log is (or will be, once it starts); None for a pod not on this node."""
        for table in (self.pods, self.done):
            for running in list(table.values()):
                if running.pod.metadata.namespace == ns and running.pod.metadata.name == name:
                    return running.log_path(container)
        return None

    def is_running(self, ns: str, name: str) -> bool:
        return any(p.pod.metadata.namespace == ns and p.pod.metadata.name == name for p in list(self.pods.values()))

    def container_port(self, pod: client.V1Pod, port: int) -> int:
        """Where a pod's container port listens here: moved for a wildcard port (see ``Image``)."""
        running = self.pods.get(pod.metadata.uid)
        return running.world.port_map.get(port, port) if running else port

    def finished(self, running: RunningPod) -> None:
        with self.lock:
            self.pods.pop(running.pod.metadata.uid, None)
            self.done[running.pod.metadata.uid] = running
        self.refresh_hosts()

    def refresh_hosts(self) -> None:
        """Every pod's /etc/hosts and the Service proxy's routes, from the API's current view."""
        with self.lock:
            services, pods = self.cluster.services(), self.cluster.pods()
            for running in list(self.pods.values()):
                running.world.hosts.write_text(hosts_file(running.pod, running.world.pod_ip, services, pods))
            self.proxy.update(services, pods)

    # the node --------------------------------------------------------------------------------
    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        with contextlib.suppress(ApiException):
            self.core.create_node(node)
        self.heartbeat()

    def heartbeat(self) -> None:
        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.node}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "pod runner is posting ready status",
                    "lastHeartbeatTime": now(),
                    "lastTransitionTime": now(),
                },
                *(
                    {
                        "type": t,
                        "status": "False",
                        "reason": f"KubeletHas{r}",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                    for t, r in (
                        ("MemoryPressure", "SufficientMemory"),
                        ("DiskPressure", "NoDiskPressure"),
                        ("PIDPressure", "SufficientPID"),
                    )
                ),
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.36.3",
                "containerRuntimeVersion": "mlworkloads-pod-runner://0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "kernelVersion": os.uname().release,
                "osImage": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kubeProxyVersion": "",
                "kernelVersion_": None,
            },
        }
        status["nodeInfo"].pop("kernelVersion_")
        self.core.patch_node_status(self.node, {"status": status})
        lease = {
            "metadata": {"name": self.node, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": 40,
                "renewTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        }
        try:
            self.coordination.patch_namespaced_lease(self.node, "kube-node-lease", lease)
        except ApiException as error:
            if error.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", lease)

    def _heartbeats(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            try:
                self.heartbeat()
            except Exception:  # the next beat tries again; a node that misses many goes NotReady
                log.exception("node heartbeat failed")

    def _watch_services(self) -> None:
        keep_watching("service", self.core.list_service_for_all_namespaces, lambda _: self.refresh_hosts())

    def _watch_secrets(self) -> None:
        # The kubelet rewrites a mounted Secret when it changes (a webhook's rotated certificate
        # reaches the server that way); this does the same on each change, not once a minute.
        def on_secret(event) -> None:
            secret = event["object"]
            for running in list(self.pods.values()):
                if running.pod.metadata.namespace != secret.metadata.namespace:
                    continue
                for volume in running.pod.spec.volumes or []:
                    if volume.secret is not None and volume.secret.secret_name == secret.metadata.name:
                        try:
                            running.world.volumes[volume.name] = running.world._volume(volume)
                        except Exception:
                            log.exception("secret %s: volume %s of pod %s not rewritten", secret.metadata.name,
                                          volume.name, running.key)  # fmt: skip

        keep_watching("secret", self.core.list_secret_for_all_namespaces, on_secret)

    # pods --------------------------------------------------------------------------------------
    def on_pod(self, kind: str, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        running = self.pods.get(uid)
        if kind == "DELETED":
            if running:
                threading.Thread(target=running.stop, daemon=True).start()
            return
        if pod.metadata.deletion_timestamp:
            threading.Thread(target=self._delete, args=(pod, running), daemon=True).start()
            return
        if running:
            running.pod = pod  # labels and annotations may change (the downward API does not follow)
            self.refresh_hosts()
            return
        if uid in self.done or (pod.status.phase in ("Succeeded", "Failed")):
            return
        with self.lock:
            running = RunningPod(self, pod, next(self.free_ips))
            self.pods[uid] = running
        threading.Thread(target=running.run, daemon=True, name=running.key).start()

    def _delete(self, pod: client.V1Pod, running: RunningPod | None) -> None:
        # As kube-proxy drops a terminating pod's endpoint: no new connection reaches it once its
        # deletion began (the routes are read afresh, and a pod being deleted has no endpoint).
        self.refresh_hosts()
        if running:
            running.stop()
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(
                pod.metadata.name,
                pod.metadata.namespace,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.metadata.uid)
                ),
            )

    def run(self) -> None:
        self.register()
        threading.Thread(target=self._heartbeats, daemon=True).start()
        threading.Thread(target=self._watch_services, daemon=True).start()
        threading.Thread(target=self._watch_secrets, daemon=True).start()
        print(f"pod runner: node {self.node} ready, kubelet port {self.kubelet_port}", flush=True)
        keep_watching(
            "pod",
            self.core.list_pod_for_all_namespaces,
            lambda event: self.on_pod(event["type"], event["object"]),
            field_selector=f"spec.nodeName={self.node}",
        )

    def shutdown(self, *_) -> None:
        for running in list(self.pods.values()):
            running.stop()
        sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--kubernetes-service-ip", required=True)
    parser.add_argument("--pod-network", required=True, help="the /16 of 127/8 pod addresses come from")
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--bind-shim", required=True)
    parser.add_argument("--serving-cert", required=True)
    parser.add_argument("--serving-key", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--node", default="node-1")
    parser.add_argument("--cpu", default="2")
    parser.add_argument("--memory", default="24Gi")
    parser.add_argument("--gpus", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = PodRunner(args)
    signal.signal(signal.SIGTERM, runner.shutdown)
    runner.run()


if __name__ == "__main__":
    main()
