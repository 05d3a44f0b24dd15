"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, controller-manager, scheduler.

Every process is upstream's own (``build.py`` builds them from ``k8s.io/kubernetes`` and
``go.etcd.io/etcd`` at the versions in ``versions.toml``), started with the flags a kubeadm
cluster uses: client-certificate and service-account-token authentication, ``Node,RBAC``
authorization, the default admission chain, controllers signing in with their own service
accounts. What differs from kubeadm, and why:

- Everything listens on 127.0.0.1 and the Service CIDR is a /16 of 127/8 (the pods get the next
  /16), so that a Service's cluster IP is an address this machine answers on (the pod runner's
  Service proxy listens there). Each cluster picks its pair at random, so that two test clusters
  on one machine (two checkouts' CI runs) do not answer for each other.
- ``--endpoint-reconciler-type=none``: Endpoints and EndpointSlices may not hold loopback
  addresses (``ValidateEndpointIP``), so the API server could not publish its own 127.0.0.1 in
  the ``kubernetes`` Service; the pod runner routes that Service to the API server instead.
- An audit log (``audit.log``, one JSON event per request at level Metadata) records who called
  which verb on which resource: the tests read it to see the API calls a client made, where the
  emulated API counted them itself.
- etcd runs with ``--unsafe-no-fsync``: a test cluster is thrown away, and fsync on every
  write would make it several times slower on these disks.

    with ControlPlane(workdir) as plane:
        plane.kubeconfig          # cluster-admin (system:masters) kubeconfig
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from mlworkloads.processes import stop_group
from support.cluster import pki
from support.cluster.build import Built, build
from support.waiting import wait_until

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
API_SERVER_NAMES = (
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
READY_TIMEOUT = 120.0


def loopback_networks() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """(Service CIDR, pod network): two adjacent /16s of 127/8, picked at random."""
    second = random.SystemRandom().randrange(16, 250, 2)
    return ipaddress.ip_network(f"127.{second}.0.0/16"), ipaddress.ip_network(f"127.{second + 1}.0.0/16")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlPlaneError(RuntimeError):
    pass


def write_kubeconfig(path: Path, server: str, ca: Path, client: pki.Pair, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mlworkloads-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}],
        "contexts": [{"name": user, "context": {"cluster": "mlworkloads-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class ControlPlane:
    """Starts the control plane in ``workdir`` (certificates, etcd data, logs); stops it on exit."""

    def __init__(self, workdir: str | os.PathLike, built: Built | None = None):
        self.workdir = Path(workdir)
        self.built = built or build(log=lambda *_: None, only=("kubeplane",))
        self.logs = self.workdir / "logs"
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.service_cidr, self.pod_network = loopback_networks()
        # The first address of the Service CIDR: the `kubernetes` Service's cluster IP.
        self.kubernetes_service_ip = str(self.service_cidr.network_address + 1)
        self.audit_log = self.logs / "audit.log"

    # -- setup -------------------------------------------------------------------------------
    def _certificates(self) -> None:
        pki_dir = self.workdir / "pki"
        self.ca = pki.Authority(pki_dir)
        self.api_serving = self.ca.issue(
            "apiserver", "kube-apiserver", hosts=(*API_SERVER_NAMES, self.kubernetes_service_ip)
        )
        self.api_kubelet_client = self.ca.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters", client=True
        )
        # kubeadm's front-proxy pair: the API server's credential towards aggregated API servers,
        # and the CA they (and the controllers' delegated authentication) trust request headers from.
        self.front_proxy = self.ca.issue("front-proxy-client", "front-proxy-client", client=True)
        self.sa_keys = pki.service_account_keys(pki_dir)
        users = {
            "admin": ("kubernetes-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", ""),
            "scheduler": ("system:kube-scheduler", ""),
        }
        self.kubeconfigs = {
            stem: write_kubeconfig(
                self.workdir / f"{stem}.kubeconfig",
                self.server,
                self.ca.cert_path,
                self.ca.issue(stem, user, organization=group, client=True),
                user,
            )
            for stem, (user, group) in users.items()
        }
        self.kubeconfig = self.kubeconfigs["admin"]

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [str(self.built.binary("kubeplane")), name, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append((name, process))
        return process

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        self._start(
            "etcd",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        )
        return f"http://127.0.0.1:{client}"

    def _start_apiserver(self, etcd: str) -> None:
        pki_dir = self.workdir / "pki"
        self._start(
            "kube-apiserver",
            f"--etcd-servers={etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={pki_dir}",
            f"--tls-cert-file={self.api_serving.cert}",
            f"--tls-private-key-file={self.api_serving.key}",
            f"--client-ca-file={self.ca.cert_path}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={self.sa_keys.cert}",
            f"--service-account-signing-key-file={self.sa_keys.key}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--kubelet-client-certificate={self.api_kubelet_client.cert}",
            f"--kubelet-client-key={self.api_kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={self.ca.cert_path}",
            f"--requestheader-client-ca-file={self.ca.cert_path}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={self.front_proxy.cert}",
            f"--proxy-client-key-file={self.front_proxy.key}",
            f"--audit-policy-file={self._audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            # Written as requests finish: a test reads the log right after its client returns.
            "--audit-log-mode=blocking",
            "--profiling=false",
        )

    def _audit_policy(self) -> Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata"}],
        }
        path = self.workdir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def audit_events(self, user: str | None = None) -> list[dict]:
        """Every completed request so far (``ResponseComplete`` events), or only ``user``'s."""
        if not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text().splitlines():
            event = json.loads(line)
            if event.get("stage") == "ResponseComplete" and user in (None, event["user"]["username"]):
                events.append(event)
        return events

    def _start_controllers(self) -> None:
        self._start(
            "kube-controller-manager",
            f"--kubeconfig={self.kubeconfigs['controller-manager']}",
            f"--authentication-kubeconfig={self.kubeconfigs['controller-manager']}",
            f"--authorization-kubeconfig={self.kubeconfigs['controller-manager']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--service-account-private-key-file={self.sa_keys.key}",
            f"--root-ca-file={self.ca.cert_path}",
            f"--cluster-signing-cert-file={self.ca.cert_path}",
            f"--cluster-signing-key-file={self.workdir / 'pki' / 'ca.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--leader-elect=false",
            "--profiling=false",
        )
        self._start(
            "kube-scheduler",
            f"--kubeconfig={self.kubeconfigs['scheduler']}",
            f"--authentication-kubeconfig={self.kubeconfigs['scheduler']}",
            f"--authorization-kubeconfig={self.kubeconfigs['scheduler']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            "--profiling=false",
        )

    # -- readiness ---------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        admin = self.workdir / "pki"
        context.load_cert_chain(str(admin / "admin.crt"), str(admin / "admin.key"))
        return context

    def get(self, path: str) -> tuple[int, str]:
        """An authenticated GET as cluster-admin: (status, body)."""
        try:
            with urllib.request.urlopen(self.server + path, context=self._ssl_context(), timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def _wait_ready(self, timeout: float) -> None:
        last = {"readyz": "no answer yet"}

        def ready() -> bool:
            self._check_alive()
            try:
                status, last["readyz"] = self.get("/readyz")
            except OSError as error:
                last["readyz"] = str(error)
                return False
            return status == 200

        wait_until(ready, what="kube-apiserver's /readyz", timeout=timeout, interval=0.25,
                   state=lambda: last["readyz"][-2000:])  # fmt: skip

    def _wait_default_service_account(self, timeout: float) -> None:
        # The controller-manager's service-account controller makes `default` in every namespace;
        # pods cannot be created in a namespace before it exists.
        def made() -> bool:
            self._check_alive()
            return self.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

        wait_until(
            made, what="the controller-manager to make the `default` service account", timeout=timeout,
            interval=0.25, state=lambda: self.log_tail("kube-controller-manager"),
        )  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._certificates()
        started = time.monotonic()
        self._start_apiserver(self._start_etcd())
        self._wait_ready(READY_TIMEOUT)
        self._start_controllers()
        self._wait_default_service_account(max(10.0, READY_TIMEOUT - (time.monotonic() - started)))
        return self

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.built.binary("kubeplane")), "kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            check=check,
            timeout=timeout,
        )

    def stop(self) -> None:
        # Controllers first, etcd last, so nothing logs a storm of errors about a missing store.
        for _, process in reversed(self.processes):
            if process.poll() is None:
                stop_group(process, grace=15)  # each was started in a session of its own
        self.processes.clear()

    def __enter__(self) -> ControlPlane:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
