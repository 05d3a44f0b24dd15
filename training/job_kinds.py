"""Which kind of training job to launch, and its manifest: PyTorchJob, TrainJob, or what the cluster serves.

`job_kind="auto"` asks the API server's discovery which of the two it serves, TrainJob first:
Kubeflow Trainer v2 replaces the training operator v1, and a cluster that installed both is
moving to it. Discovery is readable by every authenticated account (`system:discovery`), so
it needs no permission of its own.
"""

from __future__ import annotations

import os
from typing import Any

from mlworkloads.kube import api_client
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.job_runner import JobKind
from mlworkloads.training.job_settings import JobSettings

JOB_KINDS = ("auto", "pytorchjob", "trainjob")


def _serves(apis: Any, group: str, version: str, plural: str) -> bool:
    from kubernetes import client as k8s

    try:
        resources = k8s.CustomObjectsApi(apis).get_api_resources(group, version).resources
    except Exception as err:  # noqa: BLE001 - a 404 is "not served"; anything else is the caller's
        if getattr(err, "status", None) == 404:
            return False
        raise
    return any(r.name == plural for r in resources)


def _pytorchjob_kind() -> JobKind:
    from kubeflow.training import TrainingClient

    from mlworkloads.training.pytorchjob import PyTorchJobKind

    # KUBECONFIG is read now, not when the kubernetes package was imported; inside a pod the
    # client falls back to the in-cluster service account.
    return PyTorchJobKind(TrainingClient(config_file=os.environ.get("KUBECONFIG") or None))


def _trainjob_kind(apis: Any) -> JobKind:
    from mlworkloads.training.trainjob import TrainJobKind

    return TrainJobKind(apis)


def served_kinds() -> list[JobKind]:
    """The job kinds the cluster serves, TrainJob first."""
    from kubeflow.training.constants import constants as kf

    from mlworkloads.training import trainjob_spec

    apis = api_client()
    kinds = []
    if _serves(apis, trainjob_spec.GROUP, trainjob_spec.VERSION, trainjob_spec.PLURAL):
        kinds.append(_trainjob_kind(apis))
    if _serves(apis, kf.GROUP, kf.VERSION, kf.JOB_PARAMETERS[kf.PYTORCHJOB_KIND]["plural"]):
        kinds.append(_pytorchjob_kind())
    return kinds


def job_kind_for(job_kind: str) -> JobKind:
    """The kind to launch: as named, or for "auto" the first the cluster serves.

    Raises:
        ConfigError: an unknown `job_kind`, or "auto" on a cluster that serves neither kind.
    """
    if job_kind not in JOB_KINDS:
        raise ConfigError(f"job_kind={job_kind!r}: expected one of {list(JOB_KINDS)}.")
    if job_kind == "pytorchjob":
        return _pytorchjob_kind()
    if job_kind == "trainjob":
        return _trainjob_kind(api_client())
    kinds = served_kinds()
    if not kinds:
        raise ConfigError(
            "job_kind='auto': the cluster serves neither TrainJob (trainer.kubeflow.org/v1alpha1, Kubeflow "
            "Trainer) nor PyTorchJob (kubeflow.org/v1, the training operator); install one of them."
        )
    return kinds[0]


def build_manifest(
    kind: JobKind, name: str, namespace: str, settings: JobSettings, command: list[str], runtime: str = ""
) -> Any:
    """The job of `kind` that runs `command` on every node, as its typed model."""
    from mlworkloads.training.trainjob_spec import KIND as TRAINJOB
    from mlworkloads.training.trainjob_spec import build_trainjob

    if kind.kind == TRAINJOB:
        return build_trainjob(name, namespace, settings, command, **({"runtime": runtime} if runtime else {}))
    if runtime:
        raise ConfigError(f"runtime={runtime!r} is a TrainJob setting; a PyTorchJob has no runtime.")
    from mlworkloads.training.pytorchjob_spec import build_job

    return build_job(name, namespace, settings, command)
