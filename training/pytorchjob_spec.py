"""The PyTorchJob a training run becomes, built from the SDK's typed models (running it: `pytorchjob.py`).

One Master and `num_workers - 1` Workers run the image's command; the training operator injects
the rendezvous (`PET_NNODES`, `PET_NODE_RANK`, `PET_MASTER_ADDR`, ...), which torchrun reads as
its defaults, and `nprocPerNode` sets the processes per replica.
"""

from __future__ import annotations

from typing import Any

from kubeflow.training import models
from kubeflow.training.constants import constants as kf
from kubernetes import client as k8s

from mlworkloads.kube import snake_case_keys
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


def build_job(name: str, namespace: str, settings: JobSettings, command: list[str]) -> models.KubeflowOrgV1PyTorchJob:
    """The PyTorchJob, from the kubeflow-training SDK's typed models.

    Args:
        command: The container's command, torchrun included (`torchrun.cluster_command`).
    """
    labels = job_labels(settings)
    container = k8s.V1Container(
        name=kf.PYTORCHJOB_CONTAINER,
        image=settings.image,
        command=command,
        env=container_env(settings) or None,
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=settings.storage_secret))]
        if settings.storage_secret
        else None,
        resources=resources(settings),
        volume_mounts=volume_mounts(settings),
    )
    pod = k8s.V1PodTemplateSpec(
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


def manifest_dict(job: models.KubeflowOrgV1PyTorchJob) -> dict[str, Any]:
    """The job as the API server receives it (camelCase keys)."""
    return k8s.ApiClient().sanitize_for_serialization(job)
