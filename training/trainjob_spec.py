"""The TrainJob a training run becomes on Kubeflow Trainer v2 (running it: `job_runner.py`).

Written as Trainer >= 2.2 defines it, from `kubeflow-trainer-api`'s typed models: the
`trainer` block carries the image, command, env, node count, processes per node and compute
per node; everything about the pods that block has no field for (node selector, tolerations,
affinity, pull secrets, service account, volumes, labels) goes into one `runtimePatches` entry
that this launcher owns (`manager`), patching the runtime's `node` replicated job. There is
no elastic policy and no `podSpecOverrides` (removed in v2.2). The runtime (`torch-distributed`
by default) sets the rendezvous variables (`PET_NNODES`, `PET_NPROC_PER_NODE`,
`PET_NODE_RANK`, `PET_MASTER_ADDR`, `PET_MASTER_PORT`) that torchrun reads.
"""

from __future__ import annotations

from typing import Any

from kubeflow_trainer_api import models
from kubernetes import client as k8s

from mlworkloads.training.errors import ConfigError
from mlworkloads.training.job_settings import (
    JobSettings,
    container_env,
    job_labels,
    pod_labels,
    resources,
    volume_mounts,
    volumes,
)

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TrainJob"
PLURAL = "trainjobs"
#: The ClusterTrainingRuntime a TrainJob runs on unless told otherwise.
DEFAULT_RUNTIME = "torch-distributed"
#: The replicated job and the container the torch runtimes name `node`.
NODE = "node"
#: Who owns our entry of `runtimePatches` (Kueue, for one, writes its own).
PATCH_MANAGER = "mlworkloads.io/launcher"
ISTIO_INJECT_ANNOTATION = "sidecar.istio.io/inject"


def check_settings(settings: JobSettings) -> None:
    """Refuses the settings a TrainJob has no place for, naming them."""
    if settings.elastic_max_replicas or settings.elastic_min_replicas:
        raise ConfigError(
            "elastic_min_replicas/elastic_max_replicas: a TrainJob has no elastic policy (Trainer v2.2 "
            "removed it); use job_kind='pytorchjob' for an elastic job, or a fixed num_workers."
        )
    if settings.storage_secret:
        raise ConfigError(
            f"storage_secret={settings.storage_secret!r}: a TrainJob's patches carry no envFrom; pass the "
            "credentials as env entries with secretKeyRef (the task's env), or use job_kind='pytorchjob'."
        )


def _plain(value: Any) -> Any:
    """A Kubernetes client model as the JSON the API server takes (camelCase keys)."""
    return k8s.ApiClient().sanitize_for_serialization(value)


def build_trainjob(
    name: str,
    namespace: str,
    settings: JobSettings,
    command: list[str],
    runtime: str = DEFAULT_RUNTIME,
    per_node: bool = True,
) -> models.TrainerV1alpha1TrainJob:
    """The TrainJob, from `kubeflow-trainer-api`'s typed models.

    Args:
        command: The container's command (torchrun included for torch: `torchrun.cluster_command`).
        runtime: The ClusterTrainingRuntime to run on.
        per_node: Set the processes per node (torch); the `xgboost-distributed` runtime runs one
            worker per node (per GPU) and takes no count.

    Raises:
        ConfigError: a setting a TrainJob cannot carry (`check_settings`).
    """
    check_settings(settings)
    labels = job_labels(settings)
    pod_spec: dict[str, Any] = {
        "containers": [{"name": NODE, "volumeMounts": _plain(volume_mounts(settings))}],
        "volumes": _plain(volumes(settings)),
    }
    if settings.node_selector:
        pod_spec["nodeSelector"] = settings.node_selector
    if settings.tolerations:
        pod_spec["tolerations"] = settings.tolerations
    if settings.affinity:
        pod_spec["affinity"] = settings.affinity
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    pod_metadata = {
        "labels": pod_labels(settings),
        "annotations": {ISTIO_INJECT_ANNOTATION: "false", **settings.annotations},
    }
    patch = {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {"name": NODE, "template": {"spec": {"template": {"metadata": pod_metadata, "spec": pod_spec}}}}
                    ]
                }
            }
        },
    }
    trainer = {
        "image": settings.image,
        "command": command,
        "numNodes": settings.num_workers,
        "resourcesPerNode": _plain(resources(settings)),
    }
    if per_node:
        trainer["numProcPerNode"] = settings.nproc_per_node
    env = _plain(container_env(settings))
    if env:
        trainer["env"] = env
    spec: dict[str, Any] = {"runtimeRef": {"name": runtime}, "trainer": trainer, "runtimePatches": [patch]}
    if settings.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = settings.active_deadline_seconds
    return models.TrainerV1alpha1TrainJob.from_dict(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec,
        }
    )


def manifest_dict(job: models.TrainerV1alpha1TrainJob) -> dict[str, Any]:
    """The TrainJob as the API server receives it (camelCase keys, no nulls)."""
    return job.to_dict()
