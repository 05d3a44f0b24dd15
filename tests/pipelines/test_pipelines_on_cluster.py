"""The built-in pipelines with their training on the REAL test cluster: training_pipeline as a
Kubeflow Trainer TrainJob and sweep_pipeline's trials as PyTorchJobs, the rest of the steps as
kfp.local runs them.

Their deploy step runs with the local backend here, as in the examples' test: from outside the
cluster a Standard-mode predictor is checked through the API server's service proxy, which the
test cluster's loopback pod addresses cannot serve (README: simulated pieces); the deploy step
itself runs in a pod against KServe in tests/serving/test_deploy.py.
"""

import kfp.local
import pytest

from mlworkloads.pipelines.sweep_pipeline import sweep_pipeline
from mlworkloads.pipelines.training_pipeline import training_pipeline


def _created(kube_cluster, namespace: str, resource: str) -> list[dict]:
    return [e for e in kube_cluster.plane.audit_events() if e["verb"] == "create"
            and e.get("objectRef", {}).get("resource") == resource
            and e["objectRef"].get("namespace") == namespace]  # fmt: skip


@pytest.mark.e2e
def test_training_pipeline_trains_as_a_trainjob_and_passes_its_gate(tmp_path, cluster_namespace, kube_cluster):
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    training_pipeline(
        max_rows=20000, backend="trainjob", epochs=2, hidden_sizes=[32], num_workers=2, nproc_per_node=1,
        namespace=cluster_namespace, deploy_backend="local", thresholds={"roc_auc": ">=0.6"},
    )  # fmt: skip
    (created,) = _created(kube_cluster, cluster_namespace, "trainjobs")
    assert created["responseStatus"]["code"] == 201
    assert [p for p in tmp_path.rglob("deploy-inferenceservice/status")], "the pipeline did not reach its deploy"


@pytest.mark.e2e
def test_sweep_pipeline_runs_each_trial_as_a_pytorchjob(tmp_path, cluster_namespace, kube_cluster):
    """The network's trials as PyTorchJobs, the trees' trial as a TrainJob on the
    xgboost-distributed runtime; a stump loses on log loss, so the network is retrained."""
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    sweep_pipeline(
        max_rows=20000, backend="pytorchjob", tree_backend="trainjob", trial_epochs=2, epochs=2, num_workers=2,
        configurations=[{"hidden_sizes": [16], "learning_rate": 0.004, "dropout": 0.0},
                        {"hidden_sizes": [32], "learning_rate": 0.002, "dropout": 0.1}],
        tree_configurations=[{"learning_rate": 0.01, "max_leaves": 2}], trial_rounds=1,
        selection_metric="validation_log_loss",
        namespace=cluster_namespace, deploy_backend="local", thresholds={"roc_auc": ">=0.55"},
    )  # fmt: skip
    # One job per trial, and one for the final model trained with the best trial's settings.
    jobs = _created(kube_cluster, cluster_namespace, "pytorchjobs")
    assert len(jobs) == 3 and {e["responseStatus"]["code"] for e in jobs} == {201}
    (tree_trial,) = _created(kube_cluster, cluster_namespace, "trainjobs")
    assert tree_trial["responseStatus"]["code"] == 201
    assert [p for p in tmp_path.rglob("deploy-inferenceservice/status")]
