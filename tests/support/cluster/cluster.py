"""The test cluster: the real control plane, our pod runner as its one node, and upstream's operators
(the training operator, KServe, JobSet and Kubeflow Trainer).

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
import threading
import time
from pathlib import Path

import yaml

from mlworkloads.images import COMPONENT_IMAGE
from support.cluster import certificates
from support.cluster.build import INSTALLED, bind_shim, build
from support.cluster.control_plane import ControlPlane, ControlPlaneError
from support.cluster.ingress import IngressProxy
from support.waiting import WaitTimeout, wait_until

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
        self._ingress: IngressProxy | None = None

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
        self._wait_node_ready(60)

    def _wait_node_ready(self, timeout: float) -> None:
        jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'

        def ready() -> bool:
            self.plane._check_alive()
            return self.kubectl("get", f"node/{NODE}", "-o", f"jsonpath={jsonpath}", check=False).stdout == "True"

        wait_until(
            ready, what=f"node {NODE} to be Ready", timeout=timeout, interval=0.25,
            state=lambda: self.plane.log_tail("pod-runner"),
        )  # fmt: skip

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
                self.wait_established()
        self.kserve_certificates = certificates.issue_and_inject(self)
        self.wait_available("kserve", "kserve-controller-manager")
        custom = [d for d in documents if d["kind"] in own_kinds]
        if custom:
            self.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(custom))
        # The ClusterServingRuntimes of KServe's release (its `kserve-cluster-resources`): the
        # model formats' servers. Only those whose image the pod runner can run start here
        # (scikit-learn's); the others are admitted and would fail to pull.
        runtimes = self.kubectl("kustomize", str(self.built.source("kserve") / "config/runtimes"))
        self.kubectl("apply", "--server-side", "-f", "-", input=runtimes.stdout)

    def wait_established(self, timeout: float = 90) -> None:
        """Every CRD Established. Polled, not `kubectl wait --all`: that fails outright ("accessor
        error: <nil>") on a CRD it lists before the API server has given it any condition."""

        def pending() -> list[str]:
            listed = json.loads(self.kubectl("get", "crd", "-o", "json").stdout)["items"]
            return [
                crd["metadata"]["name"]
                for crd in listed
                if not any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in (crd.get("status") or {}).get("conditions") or []
                )
            ]

        wait_until(lambda: not pending(), what="every CRD to be Established", timeout=timeout, interval=0.5,
                   state=pending)  # fmt: skip

    def install_jobset(self) -> None:
        """JobSet from its module's own ``config/default`` (what its release's manifests.yaml is
        built from; Trainer's overlay points at that file's download URL, which is not a registry)."""
        config = self.built.source("jobset") / "config" / "default"
        self.kubectl("apply", "--server-side", "-k", str(config), timeout=180)
        self.wait_available("jobset-system", "jobset-controller-manager")

    def install_trainer(self) -> None:
        """Kubeflow Trainer as its release's ``manifests/overlays/manager`` installs it, less the
        JobSet that overlay fetches from a URL (installed from its module), then its runtimes
        (``manifests/overlays/runtimes``: ClusterTrainingRuntime ``torch-distributed`` and the rest)."""
        manifests = self.built.source("trainer") / "manifests"
        overlay = yaml.safe_load((manifests / "overlays" / "manager" / "kustomization.yaml").read_text())
        overlay["resources"] = [r for r in overlay["resources"] if "third-party/jobset" not in r]
        ours = manifests / "overlays" / "mlworkloads-test"
        ours.mkdir(exist_ok=True)
        (ours / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
        (ours / "namespace.yaml").write_text((manifests / "overlays" / "manager" / "namespace.yaml").read_text())
        self.kubectl("apply", "--server-side", "-k", str(ours), timeout=180)
        self.wait_available("kubeflow-system", "kubeflow-trainer-controller-manager")
        # The runtimes are admitted by the controller's webhook (its certificate is its own rotator's).
        self.kubectl("apply", "--server-side", "-k", str(manifests / "overlays" / "runtimes"), timeout=180)

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
        wait_until(
            lambda: self.kubectl("-n", name, "get", "serviceaccount/default", check=False).returncode == 0,
            what=f"the service-account controller to make `default` in namespace {name}",
            timeout=30,
            state=lambda: self.plane.log_tail("kube-controller-manager"),
        )
        return name

    def describe_pod(self, namespace: str, name: str, tail: int = 20) -> str:
        """A pod as a person debugging a wait wants it: phase, conditions, container states, log tail."""
        found = self.kubectl("-n", namespace, "get", "pod", name, "-o", "json", check=False)
        if found.returncode != 0:
            return f"pod {namespace}/{name}: {found.stderr.strip()}"
        status = json.loads(found.stdout).get("status", {})
        conditions = ", ".join(
            f"{c['type']}={c['status']}" + (f" ({c.get('reason')}: {c.get('message', '')})" if c.get("reason") else "")
            for c in status.get("conditions", [])
        )
        containers = "; ".join(
            f"{c['name']}: {json.dumps(c.get('state', {}))}"
            for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
        )
        logs = self.kubectl("-n", namespace, "logs", name, "--all-containers", f"--tail={tail}", check=False)
        return (
            f"pod {namespace}/{name} phase {status.get('phase', '?')}; conditions: {conditions or 'none'}; "
            f"containers: {containers or 'none'}; log tail:\n{(logs.stdout or logs.stderr).rstrip()}"
        )

    def describe(self, resource: str, namespace: str, name: str) -> str:
        """An object's status conditions (or its status, if it has none), for a wait's error."""
        found = self.kubectl("-n", namespace, "get", resource, name, "-o", "json", check=False)
        if found.returncode != 0:
            return f"{resource} {namespace}/{name}: {found.stderr.strip()}"
        status = json.loads(found.stdout).get("status", {})
        conditions = status.get("conditions")
        if not conditions:
            return f"{resource} {namespace}/{name} status: {json.dumps(status)[:2000]}"
        return f"{resource} {namespace}/{name} conditions: " + "; ".join(
            f"{c['type']}={c['status']} {c.get('reason', '')} {c.get('message', '')}".rstrip() for c in conditions
        )

    def wait_for(self, namespace: str, target: str, condition: str, timeout: float = 60) -> None:
        """``kubectl wait --for=<condition> <target>``; on expiry, raises with the object's last state."""
        done = self.kubectl(
            "-n", namespace, "wait", f"--for={condition}", target, f"--timeout={timeout:g}s",
            check=False, timeout=timeout + 30,
        )  # fmt: skip
        if done.returncode != 0:
            kind, _, name = target.partition("/")
            seen = self.describe_pod(namespace, name) if kind == "pod" else self.describe(kind, namespace, name)
            raise WaitTimeout(f"{target} to be {condition}", timeout, seen)

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

    def run_pod(
        self,
        namespace: str,
        name: str,
        argv: list[str],
        *,
        service_account: str = "default",
        image: str = COMPONENT_IMAGE,
        timeout: float = 300,
    ) -> tuple[str, str]:
        """Runs ``argv`` in a pod of ``image`` as ``service_account``, as a pipeline step runs;
        returns its final phase (Succeeded or Failed) and its log."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "serviceAccountName": service_account,
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": image, "command": argv[:1], "args": argv[1:]}],
            },
        }
        self.kubectl("create", "-f", "-", input=json.dumps(pod))

        def finished() -> str | None:
            phase = self.kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_until(
            finished,
            what=f"pod {namespace}/{name} to finish",
            timeout=timeout,
            interval=0.5,
            state=lambda: self.describe_pod(namespace, name),
        )
        return phase, self.kubectl("-n", namespace, "logs", name).stdout

    @property
    def ingress(self) -> IngressProxy:
        """The simulated ingress controller (support/cluster/ingress.py), started on first use."""
        if self._ingress is None:
            self._ingress = IngressProxy(str(self.kubeconfig)).start()
        return self._ingress

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
        self.install_jobset()
        self.install_trainer()
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self._ingress is not None:
            self._ingress.stop()
        self.plane.stop()

    def __enter__(self) -> TestCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    """`make cluster`: the tests' cluster for a person, up until Ctrl-C (which stops all it started)."""
    import signal
    import tempfile

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="mlworkloads-cluster-") as workdir, TestCluster(workdir) as cluster:
        print(
            f"cluster up in {cluster.startup_seconds:.0f} s: training operator, KServe (Standard mode), "
            "Kubeflow Trainer with JobSet"
        )
        print(f"kubeconfig: {cluster.kubeconfig}", flush=True)
        print("Ctrl-C stops it.", flush=True)
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
