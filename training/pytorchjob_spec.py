"""The training operator's jobs a training run becomes, from the SDK's typed models (running them: `pytorchjob.py`).

PyTorchJob: one Master and `num_workers - 1` Workers run the image's command; the training
operator injects the rendezvous (`PET_NNODES`, `PET_NODE_RANK`, `PET_MASTER_ADDR`, ...), which
torchrun reads as its defaults, and `nprocPerNode` sets the processes per replica.

XGBoostJob: the same replicas, one worker process each, no torchrun; the operator injects
`MASTER_ADDR`, `MASTER_PORT` (the Master's `xgboostjob-port`), `WORLD_SIZE` and `RANK`, and the
Master (rank 0) runs XGBoost's tracker on that port (`xgboost_world.py`).
"""

from __future__ import annotations

from typing import Any

from kubeflow.training import models
from kubeflow.training.constants import constants as kf
from kubernetes import client as k8s

from mlworkloads.kube import snake_case_keys
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.job_settings import (
    JobSettings,
    container_env,
    job_labels,
    pod_labels,
    resources,
    typed,
    volume_mounts,
    volumes,
)

ISTIO_INJECT_ANNOTATION = "sidecar.istio.io/inject"


#: The port XGBoostJob's Master serves the tracker on (the operator's default, named as it looks it up).
XGBOOST_PORT_NAME = "xgboostjob-port"
XGBOOST_PORT = 9999


def pod_template(
    settings: JobSettings, container_name: str, command: list[str], ports: list[k8s.V1ContainerPort] | None = None
) -> k8s.V1PodTemplateSpec:
    """Every replica's pod: the image running `command`, with the settings' env, compute and placement."""
    container = k8s.V1Container(
        name=container_name,
        image=settings.image,
        ports=ports,
        command=command,
        env=container_env(settings) or None,
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=settings.storage_secret))]
        if settings.storage_secret
        else None,
        resources=resources(settings),
        volume_mounts=volume_mounts(settings),
    )
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(
            labels=pod_labels(settings), annotations={ISTIO_INJECT_ANNOTATION: "false", **settings.annotations}
        ),
        spec=k8s.V1PodSpec(
            containers=[container],
            node_selector=settings.node_selector or None,
            tolerations=[k8s.V1Toleration(**snake_case_keys(t)) for t in settings.tolerations] or None,
            service_account_name=settings.service_account or None,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in settings.image_pull_secrets] or None,
            affinity=typed(settings.affinity, "V1Affinity") if settings.affinity else None,
            volumes=volumes(settings),
        ),
    )


def replica_specs(
    settings: JobSettings, pod: k8s.V1PodTemplateSpec, restart_policy: str = "OnFailure"
) -> dict[str, models.KubeflowOrgV1ReplicaSpec]:
    """One Master and `num_workers - 1` Workers."""
    replicas = {"Master": models.KubeflowOrgV1ReplicaSpec(replicas=1, restart_policy=restart_policy, template=pod)}
    if settings.num_workers > 1:
        replicas["Worker"] = models.KubeflowOrgV1ReplicaSpec(
            replicas=settings.num_workers - 1, restart_policy=restart_policy, template=pod
        )
    return replicas


def run_policy(settings: JobSettings) -> models.KubeflowOrgV1RunPolicy:
    return models.KubeflowOrgV1RunPolicy(
        backoff_limit=settings.backoff_limit,
        ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
        active_deadline_seconds=settings.active_deadline_seconds or None,
        clean_pod_policy=settings.clean_pod_policy,
    )


def build_job(name: str, namespace: str, settings: JobSettings, command: list[str]) -> models.KubeflowOrgV1PyTorchJob:
    """The PyTorchJob, from the kubeflow-training SDK's typed models.

    Args:
        command: The container's command, torchrun included (`torchrun.cluster_command`).
    """
    pod = pod_template(settings, kf.PYTORCHJOB_CONTAINER, command)
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
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=job_labels(settings)),
        spec=models.KubeflowOrgV1PyTorchJobSpec(
            nproc_per_node=str(settings.nproc_per_node),
            pytorch_replica_specs=replica_specs(settings, pod),
            elastic_policy=elastic,
            run_policy=run_policy(settings),
        ),
    )


def build_xgboostjob(
    name: str, namespace: str, settings: JobSettings, command: list[str]
) -> models.KubeflowOrgV1XGBoostJob:
    """The XGBoostJob, from the kubeflow-training SDK's typed models.

    Args:
        command: What each replica runs (one XGBoost worker; no torchrun).

    Raises:
        ConfigError: an elastic setting (an XGBoostJob has no elastic policy).
    """
    if settings.elastic_max_replicas or settings.elastic_min_replicas:
        raise ConfigError("elastic_min_replicas/elastic_max_replicas: an XGBoostJob has a fixed number of workers.")
    port = k8s.V1ContainerPort(name=XGBOOST_PORT_NAME, container_port=XGBOOST_PORT)
    pod = pod_template(settings, kf.XGBOOSTJOB_CONTAINER, command, ports=[port])
    # Never restarted in place: a restarted worker cannot rejoin a running XGBoost group (the
    # others would wait for it until their timeout). A failed worker fails the job, and the
    # retried step resumes from the checkpoint.
    replicas = replica_specs(settings, pod, restart_policy="Never")
    return models.KubeflowOrgV1XGBoostJob(
        api_version=kf.API_VERSION,
        kind=kf.XGBOOSTJOB_KIND,
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=job_labels(settings)),
        spec=models.KubeflowOrgV1XGBoostJobSpec(xgb_replica_specs=replicas, run_policy=run_policy(settings)),
    )


def manifest_dict(job: models.KubeflowOrgV1PyTorchJob) -> dict[str, Any]:
    """The job as the API server receives it (camelCase keys)."""
    return k8s.ApiClient().sanitize_for_serialization(job)
