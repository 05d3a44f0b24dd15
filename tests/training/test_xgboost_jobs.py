"""The boosted trees as an XGBoostJob (training operator v1.9) and as a TrainJob on Trainer v2.3's
`xgboost-distributed` runtime, against the REAL test cluster.

As in the PyTorchJob and TrainJob tests the launcher runs as `pipeline-runner` with exactly the
shipped Role; the operator (or Trainer and JobSet) sets each worker's rendezvous, the pod runner
runs the workers, and rank 0 runs XGBoost's tracker, which the others reach by its Service name.
"""

from __future__ import annotations

import os
import pathlib

import pytest
from support import rbac
from support.launcher import train_as

from mlworkloads.images import TRAINER_IMAGE
from mlworkloads.training import launch
from mlworkloads.training.cleanup import clean_up_training
from mlworkloads.training.errors import ConfigError, JobFailed
from mlworkloads.training.job_kinds import job_kind_for
from mlworkloads.training.job_settings import JobSettings
from mlworkloads.training.pytorchjob_spec import build_xgboostjob

BOOSTING = {"num_boost_round": 30, "early_stopping_rounds": 0, "checkpoint_interval": 10}
MODEL_FILES = ["metrics.json", "model.json", "model.ubj", "preprocessor.json"]


def _train(launcher, features, tmp_path, backend, **kwargs):
    return train_as(
        launcher,
        features,
        tmp_path,
        training=BOOSTING,
        model_family="xgboost",
        backend=backend,
        task_name="train-xgboost",
        **kwargs,
    )


def _granted_and_used(launcher, resource: str) -> None:
    granted = rbac.granted(pathlib.Path(launch.__file__).with_name("rbac.yaml"))
    used = set(launcher.calls())
    assert used <= granted, f"not granted: {used - granted}"
    assert {(verb, resource) for verb in ("create", "get", "delete")} <= used


@pytest.mark.e2e
def test_an_xgboostjob_trains_the_trees_on_two_workers_and_is_deleted(sample_features, tmp_path, launcher):
    summary, lines = _train(launcher, sample_features, tmp_path, "xgboostjob")
    assert sorted(os.listdir(tmp_path / "out" / "model")) == MODEL_FILES
    assert summary["job_kind"] == "XGBoostJob" and summary["world_size"] == 2
    name = summary["job_name"]
    assert f"created XGBoostJob {launcher.namespace}/{name}" in lines
    assert any(line.startswith(f"[{name}-master-0]") and "(2 workers" in line for line in lines), lines[-8:]
    assert any("round 30/30" in line for line in lines), lines[-8:]
    assert f"deleted XGBoostJob {launcher.namespace}/{name}" in lines
    assert launcher.jobs("xgboostjobs") == []
    _granted_and_used(launcher, "xgboostjobs.kubeflow.org")


@pytest.mark.e2e
def test_a_trainjob_on_the_xgboost_runtime_trains_the_trees_on_two_nodes(sample_features, tmp_path, launcher):
    summary, lines = _train(launcher, sample_features, tmp_path, "trainjob", keep_job=True)
    assert sorted(os.listdir(tmp_path / "out" / "model")) == MODEL_FILES
    assert summary["job_kind"] == "TrainJob" and summary["world_size"] == 2
    (stored,) = launcher.jobs("trainjobs")
    assert stored["spec"]["runtimeRef"]["name"] == "xgboost-distributed"
    assert stored["spec"]["trainer"]["numNodes"] == 2 and "numProcPerNode" not in stored["spec"]["trainer"]
    # The runtime's contract reached the nodes: rank 0 ran the tracker at the name Trainer gave it.
    name = summary["job_name"]
    assert any(line.startswith(f"[{name}-node-0-0-") and "(2 workers" in line for line in lines), lines[-8:]


@pytest.mark.e2e
def test_a_failing_worker_fails_the_xgboostjob_with_its_log_tail(sample_features, tmp_path, launcher):
    broken = dict(sample_features, train=str(tmp_path / "missing.parquet"))
    with pytest.raises(JobFailed) as err:
        _train(launcher, broken, tmp_path, "xgboostjob")
    message = str(err.value)
    assert "XGBoostJob" in message and "Failed" in message
    assert f"error: file not found: '{tmp_path / 'missing.parquet'}'" in message
    assert launcher.jobs("xgboostjobs") == []


def test_a_torch_kind_is_refused_for_the_trees_and_auto_picks_the_trainjob(sample_features, tmp_path, launcher):
    with pytest.raises(ConfigError, match="job_kind='pytorchjob' does not run xgboost training"):
        _train(launcher, sample_features, tmp_path, "pytorchjob")
    assert not [call for call in launcher.calls() if call[0] == "create"]  # refused before anything ran
    assert job_kind_for("auto", "xgboost").kind == "TrainJob"


def test_the_exit_handlers_clean_up_deletes_the_runs_xgboostjobs(launcher):
    from kubeflow.training import TrainingClient

    client = TrainingClient(config_file=os.environ["KUBECONFIG"])
    for i, run in enumerate(("run-a", "run-b")):
        settings = JobSettings(image=TRAINER_IMAGE, gpus_per_worker=1, labels={"mlworkloads.io/pipeline-run": run})
        job = build_xgboostjob(
            f"xj-{i}", launcher.namespace, settings, ["python", "-m", "mlworkloads.training.boosting"]
        )
        client.create_job(job=job, namespace=launcher.namespace)
    assert clean_up_training("run-a", launcher.namespace) == [f"deleted XGBoostJob {launcher.namespace}/xj-0"]
    assert [j["metadata"]["name"] for j in launcher.jobs("xgboostjobs")] == ["xj-1"]
