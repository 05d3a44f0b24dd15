"""The PyTorchJob a training run becomes, built from the SDK's typed models (running it: `pytorchjob.py`).

One Master and `num_workers - 1` Workers run the trainer image with `torchrun`; the training
operator injects the rendezvous (`PET_NNODES`, `PET_NODE_RANK`, `PET_MASTER_ADDR`, ...), which
torchrun reads as its defaults, and `nprocPerNode` sets the processes per replica.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from kubeflow.training import models
from kubeflow.training.constants import constants as kf
from kubeflow.training.utils.utils import FakeResponse
from kubernetes import client as k8s

from mlworkloads.kube import (
    is_name_list,
    merge_resources,
    snake_case_keys,
)
from mlworkloads.training.config import ConfigError, TrainConfig

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
ISTIO_INJECT_ANNOTATION = "sidecar.istio.io/inject"
CLEAN_POD_POLICIES = ("Running", "All", "None")


@dataclasses.dataclass(kw_only=True)
class JobSettings:
    """How the PyTorchJob is shaped and run; validated before anything is created.

    Attributes:
        image: Trainer image (see `mlworkloads.images.TRAINER_IMAGE`).
        namespace: Namespace of the job; empty means the pod's own namespace.
        num_workers: Replicas in all: one Master plus `num_workers - 1` Workers.
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
        storage_secret: Secret whose keys become environment variables (storage credentials).
        env: Extra plain environment variables (never secrets).
        pvc_name: PVC mounted at `pvc_mount` in every replica (the volume data bridge).
        pvc_mount: Where the PVC is mounted.
        backoff_limit: Pod restarts allowed before the job fails.
        ttl_seconds_after_finished: The operator deletes the finished job after this.
        active_deadline_seconds: Hard limit on the job's run time; 0 for none.
        clean_pod_policy: "Running", "All" or "None".
        elastic_min_replicas: With `elastic_max_replicas`, makes the job elastic; 0 for fixed size.
        elastic_max_replicas: Upper bound of replicas for an elastic job.
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


def build_job(name: str, namespace: str, settings: JobSettings, config: TrainConfig) -> models.KubeflowOrgV1PyTorchJob:
    """The PyTorchJob, from the kubeflow-training SDK's typed models."""
    labels = {**settings.labels, "app.kubernetes.io/managed-by": "mlworkloads"}
    if settings.queue_name:
        labels[KUEUE_QUEUE_LABEL] = settings.queue_name
    torchrun = ["torchrun"]
    if settings.max_restarts:
        torchrun.append(f"--max-restarts={settings.max_restarts}")
    container = k8s.V1Container(
        name=kf.PYTORCHJOB_CONTAINER,
        image=settings.image,
        command=[*torchrun, "-m", "mlworkloads.training", "--config-json", config.to_json()],
        env=[k8s.V1EnvVar(name=k, value=v) for k, v in sorted(settings.env.items())]
        + [_env_entry(e) for e in settings.extra_env]
        or None,
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=settings.storage_secret))]
        if settings.storage_secret
        else None,
        resources=_resources(settings),
        volume_mounts=_volume_mounts(settings),
    )
    pod = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(
            labels=labels, annotations={ISTIO_INJECT_ANNOTATION: "false", **settings.annotations}
        ),
        spec=k8s.V1PodSpec(
            containers=[container],
            node_selector=settings.node_selector or None,
            tolerations=[k8s.V1Toleration(**snake_case_keys(t)) for t in settings.tolerations] or None,
            service_account_name=settings.service_account or None,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in settings.image_pull_secrets] or None,
            affinity=_typed(settings.affinity, "V1Affinity") if settings.affinity else None,
            volumes=_volumes(settings),
        ),
    )
    replicas = {"Master": models.KubeflowOrgV1ReplicaSpec(replicas=1, restart_policy="OnFailure", template=pod)}
    if settings.num_workers > 1:
        replicas["Worker"] = models.KubeflowOrgV1ReplicaSpec(
            replicas=settings.num_workers - 1, restart_policy="OnFailure", template=pod
        )
    elastic = None
    if settings.elastic_max_replicas:
        elastic = models.KubeflowOrgV1ElasticPolicy(
            min_replicas=settings.elastic_min_replicas,
            max_replicas=settings.elastic_max_replicas,
            max_restarts=settings.max_restarts or None,
            rdzv_backend="c10d",
        )
    return models.KubeflowOrgV1PyTorchJob(
        api_version=kf.API_VERSION,
        kind=kf.PYTORCHJOB_KIND,
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=models.KubeflowOrgV1PyTorchJobSpec(
            nproc_per_node=str(settings.nproc_per_node),
            pytorch_replica_specs=replicas,
            elastic_policy=elastic,
            run_policy=models.KubeflowOrgV1RunPolicy(
                backoff_limit=settings.backoff_limit,
                ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
                active_deadline_seconds=settings.active_deadline_seconds or None,
                clean_pod_policy=settings.clean_pod_policy,
            ),
        ),
    )


def _typed(value: dict[str, Any], kind: str):
    """A Kubernetes JSON fragment (camelCase, as KFP passes it through) as the client's typed model."""
    return k8s.ApiClient().deserialize(FakeResponse(value), kind)


def _env_entry(entry: dict[str, Any]) -> k8s.V1EnvVar:
    return _typed(entry, "V1EnvVar")


def _resources(settings: JobSettings) -> k8s.V1ResourceRequirements:
    amounts = {"cpu": settings.cpu, "memory": settings.memory}
    if settings.gpus_per_worker:
        amounts["nvidia.com/gpu"] = str(settings.gpus_per_worker)
    merged = merge_resources(amounts, settings.resources)
    return k8s.V1ResourceRequirements(requests=merged["requests"], limits=merged["limits"])


def _own_pvc_mount(settings: JobSettings) -> bool:
    """Whether to mount `pvc_name` ourselves: not when the task's own mount of it is passed through."""
    passed = {m.get("mountPath") for m in settings.volume_mounts}
    return bool(settings.pvc_name) and settings.pvc_mount not in passed


def _volumes(settings: JobSettings) -> list[k8s.V1Volume]:
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
    return volumes + [_typed(v, "V1Volume") for v in settings.volumes]


def _volume_mounts(settings: JobSettings) -> list[k8s.V1VolumeMount]:
    mounts = [k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")]
    if _own_pvc_mount(settings):
        mounts.append(k8s.V1VolumeMount(name="bridge", mount_path=settings.pvc_mount))
    return mounts + [_typed(m, "V1VolumeMount") for m in settings.volume_mounts]


def manifest_dict(job: models.KubeflowOrgV1PyTorchJob) -> dict[str, Any]:
    """The job as the API server receives it (camelCase keys)."""
    return k8s.ApiClient().sanitize_for_serialization(job)
