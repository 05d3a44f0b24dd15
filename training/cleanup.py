"""Deleting the training jobs a failed run left behind (called by the exit handler)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def clean_up_training(run_id: str, namespace: str) -> list[str]:
    """Deletes the run's PyTorchJobs and TrainJobs; reports what it did.

    A kind the cluster does not serve is skipped. Never raises: clean-up must not fail a run.
    """
    try:
        from mlworkloads.kube import api_status, pod_namespace
        from mlworkloads.training.job_kinds import served_kinds

        ns = namespace or pod_namespace()
        kinds = served_kinds()
    except Exception as err:  # noqa: BLE001
        return [f"could not clean up training jobs: {err}"]
    from mlworkloads.training.job_runner import delete_run_jobs

    report = []
    for kind in kinds:
        try:
            deleted = delete_run_jobs(kind, ns, run_id, echo=log.info)
        except Exception as err:  # noqa: BLE001
            if api_status(err) == 404:
                continue
            report.append(f"could not clean up {kind.kind}s: {err}")
            continue
        report += [f"deleted {kind.kind} {ns}/{name}" for name in deleted]
    return report
