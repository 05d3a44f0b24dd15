"""Deleting the PyTorchJobs a failed run left behind (called by the exit handler)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def clean_up_training(run_id: str, namespace: str) -> list[str]:
    """Deletes the run's PyTorchJobs; reports what it did. Never raises: clean-up must not fail a run."""
    try:
        from kubeflow.training import TrainingClient

        from mlworkloads.kube import pod_namespace
        from mlworkloads.training.pytorchjob import delete_run_jobs

        ns = namespace or pod_namespace()
        client = TrainingClient(config_file=os.environ.get("KUBECONFIG") or None, namespace=ns)
        return [f"deleted PyTorchJob {ns}/{name}" for name in delete_run_jobs(client, ns, run_id, echo=log.info)]
    except Exception as err:  # noqa: BLE001
        return [f"could not clean up PyTorchJobs: {err}"]
