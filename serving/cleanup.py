"""What the exit handler cleans up after a failed run, in a cluster."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def clean_up_run(run_id: str, namespace: str, service_name: str) -> list[str]:
    """Deletes the run's PyTorchJobs and takes traffic off an unpromoted canary.

    Outside a cluster (no KUBECONFIG, no in-cluster service account) there is nothing to
    clean: local runs stop their own processes. Errors are reported, never raised.
    """
    if "KUBERNETES_SERVICE_HOST" not in os.environ and not os.environ.get("KUBECONFIG"):
        return ["local run: its training and serving processes stop with their steps"]
    done = []
    try:
        from kubeflow.training import TrainingClient
        from kubeflow.training.utils.utils import get_default_target_namespace
        from mlworkloads.training.pytorchjob import delete_run_jobs

        ns = namespace or get_default_target_namespace()
        client = TrainingClient(config_file=os.environ.get("KUBECONFIG") or None, namespace=ns)
        done += [f"deleted PyTorchJob {ns}/{name}" for name in delete_run_jobs(client, ns, run_id, echo=log.info)]
    except Exception as err:  # noqa: BLE001 - clean-up must not fail the exit handler
        done.append(f"could not clean up PyTorchJobs: {err}")
    if service_name:
        try:
            from mlworkloads.serving.deploy import clear_canary

            outcome = clear_canary(service_name, namespace)
            if outcome:
                done.append(outcome)
        except Exception as err:  # noqa: BLE001
            done.append(f"could not check InferenceService {service_name} for a canary: {err}")
    return done
