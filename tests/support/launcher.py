"""The training launcher's identity on the real test cluster, shared by the PyTorchJob and TrainJob tests."""

import dataclasses
import json
import pathlib

from mlworkloads.images import TRAINER_IMAGE
from mlworkloads.rbac import rbac_manifests
from mlworkloads.training import launch

RUNNER = "pipeline-runner"
#: A small, quick training run.
TRAINING = {"epochs": 1, "batch_size": 512, "hidden_sizes": [32]}


@dataclasses.dataclass
class Launcher:
    """Where the launcher runs in the cluster: its namespace and service account."""

    cluster: object
    namespace: str

    def jobs(self, resource: str = "pytorchjobs") -> list[dict]:
        """The training jobs (PyTorchJobs, or `trainjobs`) the API server holds in the namespace."""
        return self.cluster.objects(resource, self.namespace)

    def calls(self):
        """(verb, resource) -> count of the requests the launcher's account made (the audit log)."""
        return self.cluster.api_calls(self.namespace, RUNNER)

    def claim(self, name: str, directory: pathlib.Path) -> None:
        """A ReadWriteMany claim bound to `directory` (a hostPath volume), as the test process sees it."""
        directory.mkdir(parents=True, exist_ok=True)
        volume = f"{self.namespace}-{name}"
        access = {"accessModes": ["ReadWriteMany"], "storageClassName": ""}
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                **access,
                "capacity": {"storage": "1Gi"},
                "hostPath": {"path": str(directory)},
                "claimRef": {"namespace": self.namespace, "name": name},
            },
        }
        pvc = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {**access, "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}},
        }
        for manifest in (pv, pvc):
            self.cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def as_runner(kube_cluster, namespace, tmp_path, monkeypatch, role: bool = True) -> Launcher:
    kubeconfig = kube_cluster.service_account_kubeconfig(namespace, RUNNER, tmp_path / "runner.kubeconfig")
    if role:
        kube_cluster.kubectl("apply", "-f", "-", input=rbac_manifests(namespace, RUNNER, namespace))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    return Launcher(kube_cluster, namespace)


def missing_fields(sent, stored, path="spec") -> list[str]:
    """Paths of `sent` that `stored` does not hold (the API server may add defaults)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path]
        return [m for k, v in sent.items() for m in missing_fields(v, stored.get(k), f"{path}.{k}")]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [
            m for i, (a, b) in enumerate(zip(sent, stored, strict=True)) for m in missing_fields(a, b, f"{path}[{i}]")
        ]
    return [] if sent == stored else [f"{path}: sent {sent!r}, stored {stored!r}"]


def train_as(launcher, features, tmp_path, job=None, training=None, **kwargs):
    """`launch.train` as the step calls it, on the cluster (a PyTorchJob unless `backend` says otherwise;
    the network unless `model_family` says otherwise, with `training` its settings).

    Returns the summary and the lines the step printed.
    """
    inputs = {k: launch.Inputs(features[k], features[k]) for k in ("train", "validation", "preprocessor")}
    lines = []
    options = dict(
        backend="pytorchjob",
        run_id="run-1",
        task_name="train-pytorchjob",
        poll_interval_seconds=1,
        wait_timeout_seconds=300,
        echo=lines.append,
    )
    options.update(kwargs)
    summary = launch.train(
        train_features=inputs["train"],
        validation_features=inputs["validation"],
        preprocessor=inputs["preprocessor"],
        model_dir=str(tmp_path / "out" / "model"),
        training=TRAINING if training is None else training,
        job={"image": TRAINER_IMAGE, "num_workers": 2, "nproc_per_node": 1, "namespace": launcher.namespace}
        | (job or {}),
        **options,
    )
    return summary, lines
