"""The PyTorchJob launcher through the real TrainingClient, against the REAL test cluster.

The launcher runs as a stock KFP step would: as ServiceAccount `pipeline-runner` with a real
token and exactly the shipped Role (`mlworkloads rbac`), so the API server's RBAC, the CRD's
schema and the training operator's webhook and controller all judge what it sends. The replicas
are pods the operator creates, run by the pod runner (support/cluster/pod_runner.py) with torchrun.
"""

import json
import os
import pathlib

import pytest
from kubeflow.training import TrainingClient
from support import rbac
from support.launcher import TRAINING, as_runner, missing_fields, train_as

from mlworkloads.errors import AdmissionDenied
from mlworkloads.images import TRAINER_IMAGE
from mlworkloads.training import launch
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import ConfigError, JobFailed
from mlworkloads.training.job_settings import JobSettings, job_name
from mlworkloads.training.pytorchjob import PyTorchJobRunner, delete_run_jobs
from mlworkloads.training.pytorchjob_spec import build_job, manifest_dict


@pytest.mark.e2e
def test_a_two_replica_pytorchjob_trains_the_model_and_is_deleted(sample_features, tmp_path, launcher):
    summary, lines = train_as(launcher, sample_features, tmp_path)
    assert sorted(os.listdir(tmp_path / "out" / "model")) == [
        "metrics.json",
        "model.json",
        "model.pt",
        "preprocessor.json",
    ]
    assert summary["world_size"] == 2 and summary["metrics"]["validation_roc_auc"] > 0.6
    assert any("[train-train-pytorchjob-" in line and "epoch 1/1" in line for line in lines), lines
    assert launcher.jobs() == []


@pytest.mark.e2e
def test_the_volume_bridge_stages_inputs_on_the_pvc_and_the_replicas_train_from_it(sample_features, tmp_path, launcher):
    # A ReadWriteMany claim that the step (this process) and the replica pods both mount at `mount`.
    mount = tmp_path / "pvc"
    launcher.claim("training-data", mount)
    job = {"pvc_name": "training-data", "pvc_mount": str(mount)}
    summary, _ = train_as(launcher, sample_features, tmp_path, job=job, bridge="volume", keep_job=True)
    assert summary["world_size"] == 2 and (tmp_path / "out" / "model" / "model.pt").is_file()
    (staging,) = [p for p in mount.iterdir() if p.is_dir()]
    assert sorted(p.name for p in (staging / "inputs").iterdir()) == ["preprocessor", "train", "validation"]
    assert (staging / "model" / "model.pt").is_file() and (staging / "checkpoints" / "latest.json").is_file()
    (stored,) = launcher.jobs()  # kept, to read back what was launched
    pod = stored["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert {"name": "bridge", "persistentVolumeClaim": {"claimName": "training-data"}} in pod["volumes"]
    container = pod["containers"][0]
    assert {"name": "bridge", "mountPath": str(mount)} in container["volumeMounts"]
    config = json.loads(container["command"][container["command"].index("--config-json") + 1])
    assert config["train_uri"].startswith(str(staging)) and config["output_uri"] == f"{staging}/model"


@pytest.mark.e2e
def test_the_workspace_bridge_mounts_the_passed_through_workspace_in_the_replicas(sample_features, tmp_path, launcher):
    # What KFP passes through for a pipeline with a workspace: the run's claim and its mount.
    workspace = tmp_path / "kfp-workspace"
    launcher.claim("run-1-kfp-workspace", workspace)
    volume = {"name": "kfp-workspace", "persistentVolumeClaim": {"claimName": "run-1-kfp-workspace"}}
    mount = {"name": "kfp-workspace", "mountPath": str(workspace)}
    job = {"volumes": [volume], "volume_mounts": [mount]}
    summary, _ = train_as(
        launcher, sample_features, tmp_path, job=job, bridge="workspace", workspace_path=str(workspace), keep_job=True
    )
    assert summary["world_size"] == 2 and (tmp_path / "out" / "model" / "model.pt").is_file()
    (staging,) = [p for p in workspace.iterdir() if p.is_dir()]
    assert (staging / "model" / "model.pt").is_file() and (staging / "inputs" / "train").is_file()
    (stored,) = launcher.jobs()
    pod = stored["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
    assert volume in pod["volumes"] and mount in pod["containers"][0]["volumeMounts"]


@pytest.mark.parametrize(
    ("job", "workspace_path", "message"),
    [
        ({}, "", "bridge='workspace' needs workspace_path"),
        ({}, "/kfp-workspace", "no volume passed through to this step is mounted at '/kfp-workspace'"),
    ],
)
def test_the_workspace_bridge_refuses_to_start_without_a_mounted_workspace(
    sample_features, tmp_path, launcher, job, workspace_path, message
):
    with pytest.raises(ConfigError, match=message):
        train_as(launcher, sample_features, tmp_path, job=job, bridge="workspace", workspace_path=workspace_path)
    assert not launcher.calls()


def test_a_pvc_the_task_mounts_itself_is_not_mounted_twice_in_the_replicas():
    passed = {"name": "data", "persistentVolumeClaim": {"claimName": "training-data"}}
    settings = JobSettings(
        image=TRAINER_IMAGE,
        pvc_name="training-data",
        pvc_mount="/mnt/data",
        volumes=[passed],
        volume_mounts=[{"name": "data", "mountPath": "/mnt/data"}],
    )
    config = TrainConfig(train_uri="/mnt/data/t", validation_uri="/mnt/data/v", preprocessor_uri="/mnt/data/p",
                         output_uri="/mnt/data/m")  # fmt: skip
    pod = manifest_dict(build_job("j", "default", settings, launch.trainer_command(config)))["spec"][
        "pytorchReplicaSpecs"
    ]["Master"]
    mounts = [m["mountPath"] for m in pod["template"]["spec"]["containers"][0]["volumeMounts"]]
    assert sorted(mounts) == ["/dev/shm", "/mnt/data"]


def test_the_volume_bridge_needs_a_pvc(sample_features, tmp_path, launcher):
    with pytest.raises(ConfigError, match="bridge='volume' needs pvc_name"):
        train_as(launcher, sample_features, tmp_path, bridge="volume")
    assert not launcher.calls()


@pytest.mark.e2e
def test_a_failing_replica_fails_the_step_with_its_log_tail_and_no_job_is_left(sample_features, tmp_path, launcher):
    broken = dict(sample_features, train=str(tmp_path / "missing.parquet"))
    with pytest.raises(JobFailed) as err:
        train_as(launcher, broken, tmp_path)
    message = str(err.value)
    assert "condition Failed=True" in message
    assert "--- log of train-train-pytorchjob-" in message
    assert f"error: file not found: '{tmp_path / 'missing.parquet'}'" in message
    assert launcher.jobs() == []


def test_a_job_that_stays_pending_times_out_and_is_deleted(sample_features, tmp_path, launcher):
    with pytest.raises(JobFailed) as err:
        train_as(launcher, sample_features, tmp_path, job={"gpus_per_worker": 1}, wait_timeout_seconds=3)
    assert "did not succeed within 3 s" in str(err.value)
    assert "Insufficient nvidia.com/gpu" in str(err.value)
    assert launcher.jobs() == []


@pytest.mark.e2e
def test_a_retried_step_adopts_the_job_it_already_created(sample_features, tmp_path, launcher):
    model_dir = str(tmp_path / "out" / "model")  # _train's; the step's output URI in a cluster
    name = launch.run_scoped_job_name("run-1", "train-pytorchjob", TRAINING, model_dir)
    staging = str(tmp_path / "out" / name)
    first_attempt = build_job(
        name,
        launcher.namespace,
        JobSettings(image=TRAINER_IMAGE, num_workers=2),
        launch.trainer_command(
            TrainConfig(
                train_uri=sample_features["train"],
                validation_uri=sample_features["validation"],
                preprocessor_uri=sample_features["preprocessor"],
                output_uri=f"{staging}/model",
                checkpoint_uri=f"{staging}/checkpoints",
                **TRAINING,
            )
        ),
    )
    TrainingClient(config_file=os.environ["KUBECONFIG"]).create_job(job=first_attempt, namespace=launcher.namespace)
    summary, lines = train_as(launcher, sample_features, tmp_path)
    assert any("adopting the existing PyTorchJob" in line for line in lines)
    assert launcher.calls()[("create", "pytorchjobs.kubeflow.org")] == 2  # one 201, one 409
    assert summary["job_name"] == name


def test_the_manifest_carries_gpus_node_selector_tolerations_and_shm(tmp_path, launcher):
    settings = JobSettings(
        image=TRAINER_IMAGE,
        num_workers=3,
        nproc_per_node=4,
        gpus_per_worker=4,
        cpu="8",
        memory="32Gi",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        queue_name="team-a",
        image_pull_secrets=["registry-creds"],
        shm_size="16Gi",
        backoff_limit=2,
        active_deadline_seconds=7200,
        elastic_min_replicas=2,
        elastic_max_replicas=4,
        max_restarts=3,
    )
    config = TrainConfig(
        train_uri="s3://b/t", validation_uri="s3://b/v", preprocessor_uri="s3://b/p", output_uri="s3://b/m"
    )
    sent = build_job("gpu-job", launcher.namespace, settings, launch.trainer_command(config, settings.max_restarts))
    TrainingClient(config_file=os.environ["KUBECONFIG"]).create_job(job=sent, namespace=launcher.namespace)
    (stored,) = launcher.jobs()  # what the API server stored, as JSON
    # The CRD's structural schema prunes unknown fields silently: every field sent is still there.
    assert missing_fields(manifest_dict(sent)["spec"], stored["spec"]) == []
    assert stored["apiVersion"] == "kubeflow.org/v1" and stored["kind"] == "PyTorchJob"
    spec = stored["spec"]
    assert spec["nprocPerNode"] == "4"
    assert spec["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
    assert spec["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    assert spec["runPolicy"] == {
        "backoffLimit": 2,
        "ttlSecondsAfterFinished": 3600,
        "activeDeadlineSeconds": 7200,
        "cleanPodPolicy": "Running",
        "suspend": False,  # the CRD schema's default, added by the API server
    }
    assert spec["elasticPolicy"] == {
        "minReplicas": 2,
        "maxReplicas": 4,
        "maxRestarts": 3,
        "rdzvBackend": "c10d",
    }
    pod = spec["pytorchReplicaSpecs"]["Worker"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["name"] == "pytorch" and container["image"] == TRAINER_IMAGE
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert container["command"][:2] == ["torchrun", "--max-restarts=3"]
    assert pod["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"}
    assert pod["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["spec"]["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert stored["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


def _replica(settings: JobSettings) -> dict:
    config = TrainConfig(train_uri="t", validation_uri="v", preprocessor_uri="p", output_uri="m")
    return manifest_dict(build_job("j", "ns", settings, launch.trainer_command(config)))["spec"]["pytorchReplicaSpecs"][
        "Master"
    ]["template"]


def test_a_cpu_request_set_on_the_task_keeps_the_gpus_and_memory():
    """`train_pytorchjob(gpus_per_worker=4)` with `.set_cpu_request("2")`: KFP passes through only
    `{"requests": {"cpu": "2"}}`; the replicas must still ask for 4 GPUs (requests equal limits)."""
    settings = JobSettings(image=TRAINER_IMAGE, gpus_per_worker=4, memory="16Gi", resources={"requests": {"cpu": "2"}})
    (container,) = _replica(settings)["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "16Gi", "nvidia.com/gpu": "4"},
        "limits": {"cpu": "2", "memory": "16Gi", "nvidia.com/gpu": "4"},
    }


def test_task_resources_passed_through_by_kfp_merge_field_by_field():
    settings = JobSettings(
        image=TRAINER_IMAGE,
        resources={"limits": {"nvidia.com/gpu": "2", "cpu": "4"}, "requests": {"cpu": "2"}},
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]
                }
            }
        },
        extra_env=[{"name": "NCCL_DEBUG", "value": "INFO"}],
    )
    pod = _replica(settings)
    container = pod["spec"]["containers"][0]
    # The task's accelerator limit (set_accelerator_limit) wins and its request follows it.
    assert container["resources"] == {
        "limits": {"nvidia.com/gpu": "2", "cpu": "4", "memory": "8Gi"},
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"},
    }
    assert {"name": "NCCL_DEBUG", "value": "INFO"} in container["env"]
    assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


def test_a_forbidden_create_says_which_permission_is_missing(
    sample_features, tmp_path, kube_cluster, cluster_namespace, monkeypatch
):
    unbound = as_runner(kube_cluster, cluster_namespace, tmp_path, monkeypatch, role=False)
    with pytest.raises(PermissionError) as err:
        train_as(unbound, sample_features, tmp_path)
    assert f"may not create pytorchjobs.kubeflow.org in namespace '{cluster_namespace}' (HTTP 403)" in str(err.value)
    assert "mlworkloads rbac -n" in str(err.value)


def test_a_webhook_refusal_is_reported_as_the_webhooks_reason_not_as_a_missing_permission(launcher):
    """The API server answers 403 for a denying admission webhook, as for RBAC: the launcher must
    not tell the user to apply a Role they already hold."""
    config = TrainConfig(train_uri="t", validation_uri="v", preprocessor_uri="p", output_uri="m")
    job = build_job("two-masters", launcher.namespace, JobSettings(image=TRAINER_IMAGE), launch.trainer_command(config))
    job.spec.pytorch_replica_specs["Master"].replicas = 2
    runner = PyTorchJobRunner(TrainingClient(config_file=os.environ["KUBECONFIG"]), launcher.namespace, echo=print)
    with pytest.raises(AdmissionDenied) as err:
        runner.create_or_adopt(job, job.metadata.name)
    assert 'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request' in str(
        err.value
    )
    assert "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1" in str(err.value)
    assert "mlworkloads rbac" not in str(err.value)


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"num_workers": 0}, "num_workers=0: expected at least 1"),
        (
            {"gpus_per_worker": 2, "nproc_per_node": 4},
            "nproc_per_node=4 is more processes than gpus_per_worker=2",
        ),
        ({"clean_pod_policy": "Sometimes"}, "clean_pod_policy='Sometimes'"),
        ({"image_pull_secrets": [""]}, "image_pull_secrets=['']: expected a list of Secret names"),
        ({"elastic_max_replicas": 2, "elastic_min_replicas": 3}, "must hold for an elastic job"),
    ],
)
def test_bad_job_settings_are_refused_before_anything_is_created(sample_features, tmp_path, launcher, job, message):
    with pytest.raises(ConfigError) as err:
        train_as(launcher, sample_features, tmp_path, job=job)
    assert message in str(err.value)
    assert not launcher.calls()


def test_a_label_missing_from_the_data_is_refused_before_launch(sample_features, tmp_path):
    raw = dict(sample_features, train=sample_features["train_raw"])
    inputs = {k: launch.Inputs(raw[k], raw[k]) for k in ("train", "validation", "preprocessor")}
    with pytest.raises(ConfigError, match="have no label column"):
        launch.train(
            train_features=inputs["train"],
            validation_features=inputs["validation"],
            preprocessor=inputs["preprocessor"],
            model_dir=str(tmp_path / "m"),
            training=TRAINING,
            backend="local",
        )


def test_job_names_are_stable_per_task_and_distinct_across_runs():
    assert job_name("run-1", "train-pytorchjob") == job_name("run-1", "train-pytorchjob")
    assert job_name("run-1", "train-pytorchjob") != job_name("run-2", "train-pytorchjob")
    assert len(job_name("x" * 300, "Train_PyTorchJob " * 10)) <= 63


@pytest.mark.e2e
def test_every_api_call_the_launcher_makes_is_granted_by_the_shipped_role_and_no_more(
    sample_features, tmp_path, launcher
):
    train_as(launcher, sample_features, tmp_path)  # the success path
    with pytest.raises(JobFailed):  # and the failure path, which reads events and every replica's log
        train_as(launcher, dict(sample_features, train=str(tmp_path / "missing")), tmp_path / "again", run_id="run-2")
    client = TrainingClient(config_file=os.environ["KUBECONFIG"])
    delete_run_jobs(client, launcher.namespace, "run-2", echo=lambda _: None)  # the exit handler's clean-up
    granted = rbac.granted(pathlib.Path(launch.__file__).with_name("rbac.yaml"))
    used = set(launcher.calls())
    assert used <= granted, f"not granted: {used - granted}"
    # Used only when run_id is KFP's placeholder (own pod) or the inputs are in KFP's store
    # (the kfp-launcher ConfigMap and its Secret): the artifact-store test checks those.
    conditional = {("get", "pods"), ("get", "configmaps"), ("get", "secrets")}
    # The same verbs on TrainJobs and XGBoostJobs, used with job_kind "trainjob" and by the trees
    # (tests/training/test_trainjob.py, test_xgboost_jobs.py).
    for resource in ("trainjobs.trainer.kubeflow.org", "xgboostjobs.kubeflow.org"):
        conditional |= {(verb, resource) for verb in ("create", "get", "list", "delete")}
    assert granted - used == conditional, f"granted but unused: {granted - used}"


def test_the_exit_handlers_clean_up_deletes_only_the_runs_jobs(tmp_path, launcher):
    config = TrainConfig(train_uri="t", validation_uri="v", preprocessor_uri="p", output_uri="m")
    client = TrainingClient(config_file=os.environ["KUBECONFIG"])
    for run in ("run-a", "run-a", "run-b"):
        settings = JobSettings(image=TRAINER_IMAGE, gpus_per_worker=1, labels={"mlworkloads.io/pipeline-run": run})
        name = job_name(run, "train", str(len(launcher.jobs())))
        client.create_job(
            job=build_job(name, launcher.namespace, settings, launch.trainer_command(config)),
            namespace=launcher.namespace,
        )
    deleted = delete_run_jobs(client, launcher.namespace, "run-a", echo=lambda _: None)
    assert len(deleted) == 2
    assert [j["metadata"]["labels"]["mlworkloads.io/pipeline-run"] for j in launcher.jobs()] == ["run-b"]


@pytest.mark.e2e
def test_the_replicas_reach_kfps_artifact_store_as_the_launcher_configures_it(
    sample_features, tmp_path, launcher, secured_s3, monkeypatch
):
    """Inputs at `minio://` URIs in a store that enforces credentials and listens on no default
    endpoint: the replicas get its endpoint from the `kfp-launcher` ConfigMap and its keys by
    secretKeyRef to the Secret it names (before: the Secret's `accesskey` as a variable of that
    name, and `minio://` read as AWS S3)."""
    from support import kfp_store

    from mlworkloads import artifact_store, kube

    monkeypatch.delenv(artifact_store.STORE_ENV, raising=False)
    # The step runs in the launcher's namespace, as its pod's service-account files would say:
    # KFP's launcher (and so the step) reads the kfp-launcher ConfigMap of its own namespace.
    (tmp_path / "namespace").write_text(launcher.namespace)
    monkeypatch.setattr(kube, "POD_NAMESPACE_FILE", str(tmp_path / "namespace"))
    root = "v2/artifacts/training-pipeline/run-1"
    inputs = {}
    for name in ("train", "validation", "preprocessor"):
        kfp_store.upload(secured_s3, sample_features[name], f"{root}/fit-preprocessor/{name}")
        inputs[name] = launch.Inputs(sample_features[name], f"minio://mlpipeline/{root}/fit-preprocessor/{name}")
    kfp_store.install_launcher_config(secured_s3, launcher.namespace, kubeconfig=launcher.cluster.kubeconfig)
    before = launcher.calls()  # from here on, only the launcher's calls

    summary = launch.train(
        train_features=inputs["train"],
        validation_features=inputs["validation"],
        preprocessor=inputs["preprocessor"],
        model_dir=str(tmp_path / "out" / "model"),
        model_uri=f"minio://mlpipeline/{root}/train-pytorchjob/model",
        training=TRAINING,
        backend="pytorchjob",
        job={"image": TRAINER_IMAGE, "num_workers": 2, "nproc_per_node": 1, "namespace": launcher.namespace},
        run_id="run-1",
        task_name="train-pytorchjob",
        poll_interval_seconds=1,
        wait_timeout_seconds=300,
        keep_job=True,
        echo=lambda _: None,
    )
    assert summary["world_size"] == 2 and (tmp_path / "out" / "model" / "model.pt").is_file()
    (stored,) = launcher.jobs()
    container = stored["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in container and secured_s3["kfp"][1] not in json.dumps(stored)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["MLWORKLOADS_ARTIFACT_SECRET_KEY"] == {"name": "mlpipeline-minio-artifact", "key": "secretkey"}
    staged = kfp_store.s3_client(secured_s3).list_objects_v2(Bucket="mlpipeline", Prefix=f"{root}/train-pytorchjob/")
    assert any(o["Key"].endswith("/model/model.pt") for o in staged["Contents"])
    granted = rbac.granted(pathlib.Path(launch.__file__).with_name("rbac.yaml"))
    assert {("get", "configmaps"), ("get", "secrets")} <= set(launcher.calls() - before) <= granted
