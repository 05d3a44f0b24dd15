"""The launcher's TrainJob path (Kubeflow Trainer v2.3 with JobSet) against the REAL test cluster.

The launcher runs as `pipeline-runner` with exactly the shipped Role, as in the PyTorchJob tests;
Trainer's webhook and controller, JobSet's controller, the Job controller and the scheduler
judge and carry out what it sends, and the pod runner runs the nodes with torchrun.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
from support import rbac
from support.launcher import TRAINING, missing_fields, train_as

from mlworkloads.images import TRAINER_IMAGE
from mlworkloads.kube import api_client
from mlworkloads.training import launch
from mlworkloads.training.cleanup import clean_up_training
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import ConfigError, JobFailed
from mlworkloads.training.job_kinds import job_kind_for
from mlworkloads.training.job_settings import JobSettings
from mlworkloads.training.trainjob import TrainJobKind
from mlworkloads.training.trainjob_spec import build_trainjob, manifest_dict

CONFIG = TrainConfig(
    train_uri="s3://b/t", validation_uri="s3://b/v", preprocessor_uri="s3://b/p", output_uri="s3://b/m"
)


def _trainjobs(launcher) -> list[dict]:
    return launcher.jobs("trainjobs")


def test_every_setting_reaches_the_stored_trainjob_through_one_runtime_patch(launcher):
    settings = JobSettings(
        image=TRAINER_IMAGE,
        num_workers=3,
        nproc_per_node=4,
        gpus_per_worker=4,
        cpu="8",
        memory="32Gi",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a100"]}]}]
                }
            }
        },
        queue_name="team-a",
        image_pull_secrets=["registry-creds"],
        service_account="trainer",
        shm_size="16Gi",
        active_deadline_seconds=7200,
        max_restarts=3,
        env={"TEAM": "a"},
        labels={"mlworkloads.io/pipeline-run": "run-1"},
    )
    sent = manifest_dict(build_trainjob("gpu-job", launcher.namespace, settings, launch.trainer_command(CONFIG, 3)))
    launcher.cluster.kubectl("create", "-f", "-", input=json.dumps(sent))  # Trainer's webhook admits it
    (stored,) = _trainjobs(launcher)
    # The CRD's structural schema prunes unknown fields silently: every field sent is still there.
    assert missing_fields(sent["spec"], stored["spec"]) == []
    assert "podSpecOverrides" not in stored["spec"] and "elasticPolicy" not in json.dumps(stored["spec"])
    trainer = stored["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 4)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "4"
    assert trainer["command"][:2] == ["torchrun", "--max-restarts=3"]
    (patch,) = stored["spec"]["runtimePatches"]
    assert patch["manager"] == "mlworkloads.io/launcher"
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]
    assert node["name"] == "node" and pod["spec"]["nodeSelector"] == settings.node_selector
    assert pod["spec"]["tolerations"] == settings.tolerations and pod["spec"]["affinity"] == settings.affinity
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert pod["spec"]["serviceAccountName"] == "trainer"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["spec"]["volumes"]
    assert pod["spec"]["containers"] == [{"name": "node", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}]
    # Kueue admits the TrainJob as a whole: the queue label is on it, not on its pods.
    assert stored["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert "kueue.x-k8s.io/queue-name" not in pod["metadata"]["labels"]
    assert pod["metadata"]["labels"]["mlworkloads.io/pipeline-run"] == "run-1"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"elastic_min_replicas": 1, "elastic_max_replicas": 4}, "a TrainJob has no elastic policy"),
        ({"storage_secret": "s3-keys"}, "storage_secret='s3-keys': a TrainJob's patches carry no envFrom"),
    ],
    ids=["elastic", "storage-secret"],
)
def test_settings_a_trainjob_has_no_place_for_are_refused_before_anything_is_created(
    sample_features, tmp_path, launcher, setting, message
):
    with pytest.raises(ConfigError, match=message):
        train_as(launcher, sample_features, tmp_path, job=setting, backend="trainjob")
    assert not launcher.calls()[("create", "trainjobs.trainer.kubeflow.org")]


@pytest.mark.e2e
def test_a_two_node_trainjob_trains_the_model_streams_its_log_and_is_deleted(sample_features, tmp_path, launcher):
    summary, lines = train_as(launcher, sample_features, tmp_path, backend="trainjob")
    assert sorted(os.listdir(tmp_path / "out" / "model")) == [
        "metrics.json",
        "model.json",
        "model.pt",
        "preprocessor.json",
    ]
    assert summary["job_kind"] == "TrainJob" and summary["world_size"] == 2
    name = summary["job_name"]
    assert f"created TrainJob {launcher.namespace}/{name}" in lines
    assert any(line.startswith(f"[{name}-node-0-0-") and "epoch 1" in line for line in lines), lines[-5:]
    assert f"deleted TrainJob {launcher.namespace}/{name}" in lines
    assert _trainjobs(launcher) == []


@pytest.mark.e2e
def test_a_failing_node_fails_the_step_with_its_log_tail_and_every_call_is_granted(sample_features, tmp_path, launcher):
    broken = dict(sample_features, train=str(tmp_path / "missing.parquet"))
    with pytest.raises(JobFailed) as err:
        train_as(launcher, broken, tmp_path, backend="trainjob")
    message = str(err.value)
    assert "condition Failed=True" in message
    assert "--- log of train-train-pytorchjob-" in message and "-node-0-0-" in message
    assert f"error: file not found: '{tmp_path / 'missing.parquet'}'" in message
    assert _trainjobs(launcher) == []
    granted = rbac.granted(pathlib.Path(launch.__file__).with_name("rbac.yaml"))
    used = set(launcher.calls())
    assert used <= granted, f"not granted: {used - granted}"
    assert {(verb, "trainjobs.trainer.kubeflow.org") for verb in ("create", "get", "delete")} <= used


def test_a_trainjob_that_stays_pending_times_out_naming_the_schedulers_reason(sample_features, tmp_path, launcher):
    with pytest.raises(JobFailed) as err:
        train_as(
            launcher, sample_features, tmp_path, job={"gpus_per_worker": 1}, wait_timeout_seconds=5, backend="trainjob"
        )
    assert "TrainJob" in str(err.value) and "did not succeed within 5 s" in str(err.value)
    assert "Insufficient nvidia.com/gpu" in str(err.value)
    assert _trainjobs(launcher) == []


def test_auto_launches_a_trainjob_where_the_cluster_serves_both_kinds(launcher):
    assert job_kind_for("auto").kind == "TrainJob"
    with pytest.raises(ConfigError, match="job_kind='flux'"):
        job_kind_for("flux")


@pytest.mark.e2e
def test_a_retried_step_adopts_the_trainjob_it_already_created(sample_features, tmp_path, launcher):
    model_dir = str(tmp_path / "out" / "model")
    name = launch.run_scoped_job_name("run-1", "train-pytorchjob", TRAINING, model_dir)
    staging = str(tmp_path / "out" / name)
    config = TrainConfig(
        train_uri=sample_features["train"],
        validation_uri=sample_features["validation"],
        preprocessor_uri=sample_features["preprocessor"],
        output_uri=f"{staging}/model",
        checkpoint_uri=f"{staging}/checkpoints",
        **TRAINING,
    )
    first_attempt = build_trainjob(
        name, launcher.namespace, JobSettings(image=TRAINER_IMAGE, num_workers=2), launch.trainer_command(config)
    )
    TrainJobKind(api_client()).create(first_attempt, launcher.namespace)
    summary, lines = train_as(launcher, sample_features, tmp_path, backend="trainjob")
    assert f"adopting the existing TrainJob {launcher.namespace}/{name} (step retried)" in lines
    assert launcher.calls()[("create", "trainjobs.trainer.kubeflow.org")] == 2  # one 201, one 409
    assert summary["job_name"] == name and (tmp_path / "out" / "model" / "model.pt").is_file()


def test_the_exit_handlers_clean_up_deletes_the_runs_jobs_of_both_kinds(launcher):
    from kubeflow.training import TrainingClient

    from mlworkloads.training.pytorchjob_spec import build_job

    command = launch.trainer_command(CONFIG)
    for i, run in enumerate(("run-a", "run-a", "run-b")):
        settings = JobSettings(image=TRAINER_IMAGE, gpus_per_worker=1, labels={"mlworkloads.io/pipeline-run": run})
        TrainJobKind(api_client()).create(
            build_trainjob(f"tj-{i}", launcher.namespace, settings, command), launcher.namespace
        )
        TrainingClient(config_file=os.environ["KUBECONFIG"]).create_job(
            job=build_job(f"pj-{i}", launcher.namespace, settings, command), namespace=launcher.namespace
        )
    report = clean_up_training("run-a", launcher.namespace)
    assert sorted(report) == sorted(
        f"deleted {kind} {launcher.namespace}/{prefix}-{i}"
        for kind, prefix in (("TrainJob", "tj"), ("PyTorchJob", "pj"))
        for i in (0, 1)
    )
    assert [j["metadata"]["name"] for j in _trainjobs(launcher)] == ["tj-2"]
    assert [j["metadata"]["name"] for j in launcher.jobs()] == ["pj-2"]
