"""How a distributed training job is shaped, whatever runs it: a PyTorchJob or a TrainJob.

`JobSettings` holds what a team sets (image, nodes, processes per node, compute per node,
scheduling, secrets, volumes) and refuses a bad value before anything is created. The pod-level
pieces both kinds share (env, resources, volumes and mounts) are built here as the Kubernetes
client's typed models, so the two specs (`pytorchjob_spec.py`, `trainjob_spec.py`) differ only
in where they put them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from kubeflow.training.utils.utils import FakeResponse
from kubernetes import client as k8s

from mlworkloads.kube import is_name_list, merge_resources
from mlworkloads.training.errors import ConfigError

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLEAN_POD_POLICIES = ("Running", "All", "None")


@dataclasses.dataclass(kw_only=True)
class JobSettings:
    """How the training job is shaped and run; validated before anything is created.

    A node is a replica of a PyTorchJob (one Master, the rest Workers) or a node of a TrainJob.
    Settings marked PyTorchJob-only do not carry over to a TrainJob: the elastic ones and
    `storage_secret` are refused, the run policy (`backoff_limit`, `ttl_seconds_after_finished`,
    `clean_pod_policy`) is the TrainJob runtime's (`trainjob_spec.py`).

    Attributes:
        image: Trainer image (see `mlworkloads.images.TRAINER_IMAGE`).
        namespace: Namespace of the job; empty means the pod's own namespace.
        num_workers: Nodes in all (a PyTorchJob: one Master plus `num_workers - 1` Workers).
        nproc_per_node: torchrun processes per replica (one per GPU on GPU nodes).
        gpus_per_worker: `nvidia.com/gpu` per replica (requests equal limits).
        cpu: CPU request and limit per replica.
        memory: Memory request and limit per replica.
        shm_size: Size of the memory-backed `/dev/shm` (NCCL and data loaders need more than 64 MiB).
        node_selector: Node selector for the replicas.
        tolerations: Tolerations for the replicas (Kubernetes toleration dicts).
        queue_name: Kueue LocalQueue to admit the job through; empty for none.
        service_account: Service account of the replicas (for workload identity / IRSA).
        image_pull_secrets: Secrets the replicas pull the trainer image with (a private registry).
        storage_secret: Secret whose keys become environment variables (storage credentials);
            PyTorchJob-only (a TrainJob's patches carry no `envFrom`).
        env: Extra plain environment variables (never secrets).
        pvc_name: PVC mounted at `pvc_mount` in every replica (the volume data bridge).
        pvc_mount: Where the PVC is mounted.
        backoff_limit: Pod restarts allowed before the job fails; PyTorchJob-only.
        ttl_seconds_after_finished: The operator deletes the finished job after this; PyTorchJob-only.
        active_deadline_seconds: Hard limit on the job's run time; 0 for none.
        clean_pod_policy: "Running", "All" or "None"; PyTorchJob-only.
        elastic_min_replicas: With `elastic_max_replicas`, makes the job elastic; 0 for fixed size.
        elastic_max_replicas: Upper bound of replicas for an elastic job (PyTorchJob-only: Trainer
            v2.2+ has no elastic policy).
        max_restarts: torchrun restarts of the worker group (elastic recovery).
        labels: Labels for the job and its pods.
        annotations: Annotations for the job's pods.
        resources: Kubernetes resource requirements (`{"limits": ..., "requests": ...}`) merged
            over cpu/memory/gpus_per_worker field by field; what KFP passes through from the task.
        affinity: Kubernetes affinity for the replicas (passed through from the task).
        extra_env: Kubernetes env entries (passed through from the task).
        volumes: Kubernetes volumes for the replicas (passed through from the task, e.g. the KFP
            workspace's claim).
        volume_mounts: Where the replicas mount `volumes` (passed through from the task).
    """

    image: str
    namespace: str = ""
    num_workers: int = 2
    nproc_per_node: int = 1
    gpus_per_worker: int = 0
    cpu: str = "2"
    memory: str = "8Gi"
    shm_size: str = "2Gi"
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    queue_name: str = ""
    service_account: str = ""
    image_pull_secrets: list[str] = dataclasses.field(default_factory=list)
    storage_secret: str = ""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    pvc_name: str = ""
    pvc_mount: str = "/mnt/mlworkloads"
    backoff_limit: int = 3
    ttl_seconds_after_finished: int = 3600
    active_deadline_seconds: int = 0
    clean_pod_policy: str = "Running"
    elastic_min_replicas: int = 0
    elastic_max_replicas: int = 0
    max_restarts: int = 0
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)
    affinity: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra_env: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    volumes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        for name in ("num_workers", "nproc_per_node"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: expected at least 1.")
        for name in (
            "gpus_per_worker",
            "backoff_limit",
            "ttl_seconds_after_finished",
            "active_deadline_seconds",
            "max_restarts",
            "elastic_min_replicas",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r}: expected 0 or more.")
        if self.gpus_per_worker and self.nproc_per_node > self.gpus_per_worker:
            raise ConfigError(
                f"nproc_per_node={self.nproc_per_node} is more processes than gpus_per_worker="
                f"{self.gpus_per_worker}: run one process per GPU."
            )
        if not is_name_list(self.image_pull_secrets):
            raise ConfigError(f"image_pull_secrets={self.image_pull_secrets!r}: expected a list of Secret names.")
        if self.clean_pod_policy not in CLEAN_POD_POLICIES:
            raise ConfigError(f"clean_pod_policy={self.clean_pod_policy!r}: expected one of {CLEAN_POD_POLICIES}.")
        if self.elastic_max_replicas and not (
            1 <= self.elastic_min_replicas <= self.num_workers <= self.elastic_max_replicas
        ):
            raise ConfigError(
                f"elastic_min_replicas={self.elastic_min_replicas} <= num_workers={self.num_workers} <= "
                f"elastic_max_replicas={self.elastic_max_replicas} must hold for an elastic job."
            )
        for i, toleration in enumerate(self.tolerations):
            unknown = set(toleration) - {"key", "operator", "value", "effect", "tolerationSeconds"}
            if not isinstance(toleration, dict) or unknown:
                raise ConfigError(f"tolerations[{i}]={toleration!r}: unknown keys {sorted(unknown)}.")


def job_name(run_id: str, task_name: str, config: str = "", prefix: str = "train") -> str:
    """A DNS-1123 name that is stable for one task of one run, so a retried step finds its job.

    `config` (the training config) tells apart the iterations of a ParallelFor, which share
    the task name.
    """
    digest = hashlib.sha256(f"{run_id}/{task_name}/{config}".encode()).hexdigest()[:12]
    slug = re.sub(r"[^a-z0-9-]+", "-", task_name.lower()).strip("-")[:30].strip("-")
    return f"{prefix}-{slug}-{digest}" if slug else f"{prefix}-{digest}"


def typed(value: dict[str, Any], kind: str):
    """A Kubernetes JSON fragment (camelCase, as KFP passes it through) as the client's typed model."""
    return k8s.ApiClient().deserialize(FakeResponse(value), kind)


def pod_labels(settings: JobSettings) -> dict[str, str]:
    """The pods' labels: the team's and ours (the run label among them, for the exit handler)."""
    return {**settings.labels, MANAGED_BY_LABEL: "mlworkloads"}


def job_labels(settings: JobSettings) -> dict[str, str]:
    """The job's labels: the pods', and the Kueue queue when one is set.

    The queue label goes on the job only: Kueue admits the job as a whole, and on a pod it
    would have Kueue's pod integration (where enabled) gate each pod a second time.
    """
    labels = pod_labels(settings)
    if settings.queue_name:
        labels[KUEUE_QUEUE_LABEL] = settings.queue_name
    return labels


def container_env(settings: JobSettings) -> list[k8s.V1EnvVar]:
    """The plain variables (sorted), then the entries passed through from the task as they came."""
    plain = [k8s.V1EnvVar(name=k, value=v) for k, v in sorted(settings.env.items())]
    return plain + [typed(e, "V1EnvVar") for e in settings.extra_env]


def resources(settings: JobSettings) -> k8s.V1ResourceRequirements:
    amounts = {"cpu": settings.cpu, "memory": settings.memory}
    if settings.gpus_per_worker:
        amounts["nvidia.com/gpu"] = str(settings.gpus_per_worker)
    merged = merge_resources(amounts, settings.resources)
    return k8s.V1ResourceRequirements(requests=merged["requests"], limits=merged["limits"])


def _own_pvc_mount(settings: JobSettings) -> bool:
    """Whether to mount `pvc_name` ourselves: not when the task's own mount of it is passed through."""
    passed = {m.get("mountPath") for m in settings.volume_mounts}
    return bool(settings.pvc_name) and settings.pvc_mount not in passed


def volumes(settings: JobSettings) -> list[k8s.V1Volume]:
    volumes = [
        k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=settings.shm_size))
    ]
    if _own_pvc_mount(settings):
        volumes.append(
            k8s.V1Volume(
                name="bridge",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=settings.pvc_name),
            )
        )
    return volumes + [typed(v, "V1Volume") for v in settings.volumes]


def volume_mounts(settings: JobSettings) -> list[k8s.V1VolumeMount]:
    mounts = [k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")]
    if _own_pvc_mount(settings):
        mounts.append(k8s.V1VolumeMount(name="bridge", mount_path=settings.pvc_mount))
    return mounts + [typed(m, "V1VolumeMount") for m in settings.volume_mounts]
