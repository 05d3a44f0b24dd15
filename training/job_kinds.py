"""Which kind of training job to launch, and its manifest: TrainJob, the operator's job, or what the cluster serves.

Per framework: torch code runs as a TrainJob (`torch-distributed` runtime) or a PyTorchJob;
XGBoost as a TrainJob (`xgboost-distributed` runtime) or an XGBoostJob. `job_kind="auto"`
asks the API server's discovery which of the two it serves, TrainJob first: Kubeflow Trainer
v2 replaces the training operator v1, and a cluster that installed both is moving to it.
Discovery is readable by every authenticated account (`system:discovery`), so it needs no
permission of its own.
"""

from __future__ import annotations

import os
from typing import Any

from mlworkloads.kube import api_client
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.job_runner import JobKind
from mlworkloads.training.job_settings import JobSettings

JOB_KINDS = ("auto", "pytorchjob", "xgboostjob", "trainjob")
#: How each framework's processes are started, and the operator's kind that runs it.
FRAMEWORKS = {"torch": "pytorchjob", "xgboost": "xgboostjob"}
#: The ClusterTrainingRuntime a TrainJob of each framework runs on unless told otherwise.
DEFAULT_RUNTIMES = {"torch": "torch-distributed", "xgboost": "xgboost-distributed"}


def _serves(apis: Any, group: str, version: str, plural: str) -> bool:
    from kubernetes import client as k8s

    try:
        resources = k8s.CustomObjectsApi(apis).get_api_resources(group, version).resources
    except Exception as err:  # noqa: BLE001 - a 404 is "not served"; anything else is the caller's
        if getattr(err, "status", None) == 404:
            return False
        raise
    return any(r.name == plural for r in resources)


def _operator_kind(job_kind: str) -> JobKind:
    from kubeflow.training import TrainingClient

    from mlworkloads.training.pytorchjob import PyTorchJobKind, XGBoostJobKind

    # KUBECONFIG is read now, not when the kubernetes package was imported; inside a pod the
    # client falls back to the in-cluster service account.
    client = TrainingClient(config_file=os.environ.get("KUBECONFIG") or None)
    return XGBoostJobKind(client) if job_kind == "xgboostjob" else PyTorchJobKind(client)


def _trainjob_kind(apis: Any) -> JobKind:
    from mlworkloads.training.trainjob import TrainJobKind

    return TrainJobKind(apis)


def served_kinds(frameworks: tuple[str, ...] = tuple(FRAMEWORKS)) -> list[JobKind]:
    """The job kinds the cluster serves for `frameworks`, TrainJob first."""
    from kubeflow.training.constants import constants as kf

    from mlworkloads.training import trainjob_spec

    apis = api_client()
    kinds = []
    if _serves(apis, trainjob_spec.GROUP, trainjob_spec.VERSION, trainjob_spec.PLURAL):
        kinds.append(_trainjob_kind(apis))
    for framework in frameworks:
        job_kind = FRAMEWORKS[framework]
        plural = kf.JOB_PARAMETERS[{"pytorchjob": kf.PYTORCHJOB_KIND, "xgboostjob": kf.XGBOOSTJOB_KIND}[job_kind]]
        if _serves(apis, kf.GROUP, kf.VERSION, plural["plural"]):
            kinds.append(_operator_kind(job_kind))
    return kinds


def check_framework(job_kind: str, framework: str) -> None:
    """Refuses an unknown kind or framework, and an operator kind of the other framework."""
    if framework not in FRAMEWORKS:
        raise ConfigError(f"framework={framework!r}: expected one of {list(FRAMEWORKS)}.")
    if job_kind not in JOB_KINDS:
        raise ConfigError(f"job_kind={job_kind!r}: expected one of {list(JOB_KINDS)}.")
    if job_kind in FRAMEWORKS.values() and job_kind != FRAMEWORKS[framework]:
        raise ConfigError(
            f"job_kind={job_kind!r} does not run {framework} training: use 'trainjob', 'auto' or "
            f"{FRAMEWORKS[framework]!r}."
        )


def job_kind_for(job_kind: str, framework: str = "torch") -> JobKind:
    """The kind to launch `framework`'s processes: as named, or for "auto" the first the cluster serves.

    Raises:
        ConfigError: an unknown `job_kind`, one of the other framework, or "auto" on a cluster
            that serves neither kind.
    """
    check_framework(job_kind, framework)
    if job_kind in FRAMEWORKS.values():
        return _operator_kind(job_kind)
    if job_kind == "trainjob":
        return _trainjob_kind(api_client())
    kinds = served_kinds((framework,))
    if not kinds:
        operator_kind = {"torch": "PyTorchJob", "xgboost": "XGBoostJob"}[framework]
        raise ConfigError(
            "job_kind='auto': the cluster serves neither TrainJob (trainer.kubeflow.org/v1alpha1, Kubeflow "
            f"Trainer) nor {operator_kind} (kubeflow.org/v1, the training operator); install one of them."
        )
    return kinds[0]


def build_manifest(
    kind: JobKind,
    name: str,
    namespace: str,
    settings: JobSettings,
    command: list[str],
    runtime: str = "",
    framework: str = "torch",
) -> Any:
    """The job of `kind` that runs `command` on every node, as its typed model."""
    from mlworkloads.training.trainjob_spec import KIND as TRAINJOB
    from mlworkloads.training.trainjob_spec import build_trainjob

    if kind.kind == TRAINJOB:
        return build_trainjob(
            name, namespace, settings, command, runtime or DEFAULT_RUNTIMES[framework], per_node=framework == "torch"
        )
    if runtime:
        raise ConfigError(f"runtime={runtime!r} is a TrainJob setting; a {kind.kind} has no runtime.")
    from mlworkloads.training.pytorchjob_spec import build_job, build_xgboostjob

    build = build_xgboostjob if framework == "xgboost" else build_job
    return build(name, namespace, settings, command)
