"""The test cluster: the real control plane, our pod runner as its one node, and upstream's operators.

    with TestCluster(workdir) as cluster:
        cluster.kubeconfig      # cluster-admin
        cluster.kubectl("get", "pytorchjobs", "-A")

The training operator is installed as its release installs it (``kubectl apply --server-side -k
manifests/overlays/standalone`` from its module's source): CRDs, RBAC, the validating webhook
whose certificate its own rotator makes, the Deployment, whose pod the pod runner runs from the
binary ``build.py`` built.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from support.cluster import certificates
from support.cluster.build import INSTALLED, bind_shim, build
from support.cluster.control_plane import ControlPlane, ControlPlaneError

HERE = Path(__file__).resolve().parent
NODE = "node-1"
INSTALL_TIMEOUT = 180.0
# What the node advertises, not what this machine has: requests are scheduled, never enforced, and
# a two-replica job at the launcher's default requests (2 CPUs, 8Gi each) plus the operators must fit.
NODE_CPU, NODE_MEMORY = "16", "64Gi"


class TestCluster:
    __test__ = False  # not a pytest class

    def __init__(self, workdir: str | os.PathLike, *, gpus: int = 0, cpu: str = NODE_CPU, memory: str = NODE_MEMORY):
        self.workdir = Path(workdir)
        # Progress goes to the real stderr: pytest captures fixture output, and a cold build is minutes.
        self.built = build(log=lambda line: print(line, file=sys.__stderr__, flush=True), only=INSTALLED)
        self.plane = ControlPlane(self.workdir, self.built)
        self.gpus, self.cpu, self.memory = gpus, cpu, memory
        self.runner: subprocess.Popen | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        done = self.plane.kubectl(*args, check=False, input=input, timeout=timeout)
        if check and done.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done

    def _start_runner(self) -> None:
        serving = self.plane.ca.issue("kubelet", NODE, hosts=("127.0.0.1", NODE))
        log = open(self.plane.logs / "pod-runner.log", "ab")  # noqa: SIM115 (lives as long as the runner)
        self.runner = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "pod_runner.py"),
                f"--kubeconfig={self.kubeconfig}",
                f"--workdir={self.workdir / 'node'}",
                f"--api-port={self.plane.api_port}",
                f"--kubernetes-service-ip={self.plane.kubernetes_service_ip}",
                f"--pod-network={self.plane.pod_network}",
                f"--bin-dir={self.built.bin}",
                f"--bind-shim={bind_shim(self.built)}",
                f"--serving-cert={serving.cert}",
                f"--serving-key={serving.key}",
                f"--ca={self.plane.ca.cert_path}",
                f"--node={NODE}",
                f"--cpu={self.cpu}",
                f"--memory={self.memory}",
                f"--gpus={self.gpus}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)},
            start_new_session=True,
        )
        self.plane.processes.append(("pod-runner", self.runner))
        self._wait_node_ready(time.monotonic() + 60)

    def _wait_node_ready(self, deadline: float) -> None:
        jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'
        while time.monotonic() < deadline:
            self.plane._check_alive()
            if self.kubectl("get", f"node/{NODE}", "-o", f"jsonpath={jsonpath}", check=False).stdout == "True":
                return
            time.sleep(0.25)
        raise ControlPlaneError(f"node {NODE} not Ready in time:\n{self.plane.log_tail('pod-runner')}")

    def install_training_operator(self) -> None:
        overlay = self.built.source("training_operator") / "manifests" / "overlays" / "standalone"
        self.kubectl("apply", "--server-side", "-k", str(overlay))
        self.wait_available("kubeflow", "training-operator")

    def install_kserve(self) -> None:
        """KServe's released standalone install (``config/overlays/standalone/kserve``), Standard mode.

        In three steps, as its install script orders them: the CRDs (cert-manager's too), then
        everything but KServe's own custom resources, whose webhooks need the controller up; then,
        once the certificates are issued and the controller is Available, those resources.
        """
        crds = self.built.source("cert_manager") / "deploy" / "crds"
        self.kubectl("apply", "--server-side", "-f", str(crds))
        rendered = self.kubectl("kustomize", str(self.built.source("kserve") / "config/overlays/standalone/kserve"))
        documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        own_kinds = {d["spec"]["names"]["kind"] for d in documents if d["kind"] == "CustomResourceDefinition"}
        stages = (
            [d for d in documents if d["kind"] == "CustomResourceDefinition"],
            [d for d in documents if d["kind"] != "CustomResourceDefinition" and d["kind"] not in own_kinds],
        )
        for stage in stages:
            self.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(stage), timeout=180)
            if stage is stages[0]:
                self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s", timeout=90)
        self.kserve_certificates = certificates.issue_and_inject(self)
        self.wait_available("kserve", "kserve-controller-manager")
        custom = [d for d in documents if d["kind"] in own_kinds]
        if custom:
            self.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(custom))

    def all_objects(self, resource: str) -> list[dict]:
        return json.loads(self.kubectl("get", resource, "-A", "-o", "json").stdout)["items"]

    def wait_available(self, namespace: str, deployment: str, timeout: float = INSTALL_TIMEOUT) -> None:
        done = self.kubectl(
            "-n",
            namespace,
            "wait",
            "--for=condition=Available",
            f"deployment/{deployment}",
            f"--timeout={timeout:.0f}s",
            check=False,
            timeout=timeout + 30,
        )
        if done.returncode != 0:
            pods = self.kubectl("-n", namespace, "get", "pods", "-o", "wide", check=False).stdout
            raise ControlPlaneError(
                f"deployment {namespace}/{deployment} not available in {timeout:.0f} s:\n{pods}\n"
                f"{self.plane.log_tail('pod-runner')}"
            )

    # -- what tests ask of it ----------------------------------------------------------------
    def create_namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name)
        # Pods need the namespace's `default` service account, which a controller makes.
        deadline = time.monotonic() + 30
        while self.kubectl("-n", name, "get", "serviceaccount/default", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"no default service account in namespace {name}")
            time.sleep(0.2)
        return name

    def objects(self, resource: str, namespace: str) -> list[dict]:
        """What the API server stores for ``resource`` in ``namespace``, as JSON."""
        return json.loads(self.kubectl("-n", namespace, "get", resource, "-o", "json").stdout)["items"]

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` with a real bound token."""
        self.kubectl("-n", namespace, "create", "serviceaccount", name)
        token = self.kubectl("-n", namespace, "create", "token", name, "--duration=2h").stdout.strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.plane.server, "certificate-authority": str(self.plane.ca.cert_path)},
                }
            ],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "test", "user": name, "namespace": namespace}}],
            "current-context": name,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def api_calls(self, namespace: str, service_account: str) -> collections.Counter:
        """(verb, resource[.group]) -> count, for every request the service account made (audit log)."""
        user = f"system:serviceaccount:{namespace}:{service_account}"
        calls: collections.Counter = collections.Counter()
        for event in self.plane.audit_events(user):
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            if ref.get("apiGroup"):
                resource += "." + ref["apiGroup"]
            calls[(event["verb"], resource)] += 1
        return calls

    def start(self) -> TestCluster:
        started = time.monotonic()
        self.plane.start()
        self._start_runner()
        self.install_training_operator()
        self.install_kserve()
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        self.plane.stop()

    def __enter__(self) -> TestCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
