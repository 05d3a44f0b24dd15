"""The TrainJob kind (Kubeflow Trainer v2.3) as `job_runner.JobRunner` drives it.

The TrainJob `trainjob_spec.py` builds goes through the Kubernetes client's custom-objects
API. Trainer turns it into a JobSet, JobSet into one Job per node; the pods carry the JobSet's
name (the TrainJob's), and the rank-0 node is the first Job's first pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from mlworkloads.training import job_runner
from mlworkloads.training.job_runner import JobKind, JobRunner
from mlworkloads.training.trainjob_spec import GROUP, KIND, NODE, PLURAL, VERSION, manifest_dict

JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
JOB_INDEX_LABEL = "jobset.sigs.k8s.io/job-index"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


class TrainJobKind(JobKind):
    kind = KIND
    resource = f"{PLURAL}.{GROUP}"
    container = NODE
    succeeded = "Complete"

    def __init__(self, api_client: k8s.ApiClient):
        super().__init__(k8s.CoreV1Api(api_client))
        self.custom = k8s.CustomObjectsApi(api_client)

    def create(self, manifest: Any, namespace: str) -> None:
        body = manifest if isinstance(manifest, dict) else manifest_dict(manifest)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def conditions(self, name: str, namespace: str) -> list[dict[str, str]]:
        job = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return (job.get("status") or {}).get("conditions") or []

    def delete(self, name: str, namespace: str) -> None:
        # Background, as the training client deletes a PyTorchJob: the garbage collector removes
        # the JobSet, its Jobs and their pods after the TrainJob is gone.
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def names(self, namespace: str, label_selector: str) -> list[str]:
        found = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector=label_selector
        )
        return [item["metadata"]["name"] for item in found.get("items", [])]

    def pod_selector(self, name: str, leader: bool = False) -> str:
        selector = f"{JOBSET_NAME_LABEL}={name}"
        return f"{selector},{JOB_INDEX_LABEL}=0,{COMPLETION_INDEX_LABEL}=0" if leader else selector


class TrainJobRunner(JobRunner):
    """Creates (or adopts), waits for, reports on and deletes one TrainJob."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str, echo: Callable[[str], None] = print):
        super().__init__(TrainJobKind(api_client), namespace, echo)


def delete_run_jobs(
    api_client: k8s.ApiClient, namespace: str, run_id: str, echo: Callable[[str], None] = print
) -> list[str]:
    """Deletes every TrainJob a pipeline run left behind (its jobs carry the run's label)."""
    return job_runner.delete_run_jobs(TrainJobKind(api_client), namespace, run_id, echo)
