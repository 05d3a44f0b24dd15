"""The training operator's (v1.9) kinds as `job_runner.JobRunner` drives them: PyTorchJob, and XGBoostJob.

Their calls go through the official `kubeflow-training` client; the job `pytorchjob_spec.py`
builds is created, read, listed and deleted here, and its pods are found by the operator's
labels (the Master's is the leader). The two kinds differ only in their names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeflow.training import TrainingClient
from kubeflow.training.constants import constants as kf

from mlworkloads.training import job_runner
from mlworkloads.training.errors import JobFailed
from mlworkloads.training.job_runner import JobKind, JobRunner, permission_hint

__all__ = ["JobFailed", "PyTorchJobKind", "PyTorchJobRunner", "XGBoostJobKind", "delete_run_jobs", "permission_hint"]

PLURAL = kf.JOB_PARAMETERS[kf.PYTORCHJOB_KIND]["plural"]


class PyTorchJobKind(JobKind):
    kind = kf.PYTORCHJOB_KIND
    plural = PLURAL
    resource = f"{PLURAL}.{kf.GROUP}"
    container = kf.PYTORCHJOB_CONTAINER
    succeeded = kf.JOB_CONDITION_SUCCEEDED

    def __init__(self, client: TrainingClient):
        super().__init__(client.core_api)
        self.client = client

    def create(self, manifest: Any, namespace: str) -> None:
        self.client.create_job(job=manifest, namespace=namespace)

    def conditions(self, name: str, namespace: str) -> list[dict[str, str]]:
        job = self.client.custom_api.get_namespaced_custom_object(kf.GROUP, kf.VERSION, namespace, self.plural, name)
        return (job.get("status") or {}).get("conditions") or []

    def delete(self, name: str, namespace: str) -> None:
        self.client.delete_job(name=name, namespace=namespace, job_kind=self.kind)

    def names(self, namespace: str, label_selector: str) -> list[str]:
        found = self.client.custom_api.list_namespaced_custom_object(
            kf.GROUP, kf.VERSION, namespace, self.plural, label_selector=label_selector
        )
        return [item["metadata"]["name"] for item in found.get("items", [])]

    def pod_selector(self, name: str, leader: bool = False) -> str:
        selector = f"{kf.JOB_NAME_LABEL}={name}"
        return f"{selector},{kf.JOB_ROLE_LABEL}={kf.JOB_ROLE_MASTER}" if leader else selector


class XGBoostJobKind(PyTorchJobKind):
    """XGBoostJob: a Master (rank 0, which runs XGBoost's tracker) and Workers, no torchrun."""

    kind = kf.XGBOOSTJOB_KIND
    plural = kf.XGBOOSTJOB_PLURAL
    resource = f"{kf.XGBOOSTJOB_PLURAL}.{kf.GROUP}"
    container = kf.XGBOOSTJOB_CONTAINER


class PyTorchJobRunner(JobRunner):
    """Creates (or adopts), waits for, reports on and deletes one PyTorchJob."""

    def __init__(self, client: TrainingClient, namespace: str, echo: Callable[[str], None] = print):
        super().__init__(PyTorchJobKind(client), namespace, echo)


def delete_run_jobs(
    client: TrainingClient, namespace: str, run_id: str, echo: Callable[[str], None] = print
) -> list[str]:
    """Deletes every PyTorchJob a pipeline run left behind (its jobs carry the run's label)."""
    return job_runner.delete_run_jobs(PyTorchJobKind(client), namespace, run_id, echo)
