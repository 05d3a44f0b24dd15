"""What the `train_pytorchjob` component does: pick a backend, train, collect the model.

Backends: `local` runs torchrun on this machine; `pytorchjob` creates a Kubeflow PyTorchJob;
`auto` picks `pytorchjob` inside a Kubernetes pod and `local` elsewhere.

Data bridge for the PyTorchJob: the replicas cannot see the step's local artifact paths, so
- `artifacts` (default): the replicas read the inputs at their artifact URIs in KFP's object
  store (its endpoint and keys as KFP's launcher reads them, `mlworkloads.artifact_store`) and
  write the model under a staging prefix beside the output artifact;
- `volume`: the step copies the inputs onto a PVC that both the step and the replicas mount,
  and the replicas write the model there;
- `workspace`: the same through the KFP (2.15+) workspace, the run's own PVC: the pipeline
  passes `dsl.WORKSPACE_PATH_PLACEHOLDER`, and KFP passes the workspace volume through to the
  component, which mounts it in the replicas at the same path.
Either way the step then copies the model into its output artifact, which KFP uploads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

from mlworkloads import artifact_store
from mlworkloads.data.storage import artifact_uri, filesystem
from mlworkloads.kube import resolve_backend, resolve_task_name
from mlworkloads.training.config import ConfigError, TrainConfig
from mlworkloads.training.local import run_torchrun

log = logging.getLogger(__name__)

BACKENDS = ("auto", "local", "pytorchjob")
#: The local backend's scratch directory (checkpoints, the exported model) beside the output.
WORK_DIR_NAME = "training-work"
BRIDGES = ("artifacts", "volume", "workspace")


@dataclasses.dataclass
class Inputs:
    """One input artifact: its local path in the step and its URI in the object store."""

    path: str
    uri: str


def train(
    *,
    train_features: Inputs,
    validation_features: Inputs,
    preprocessor: Inputs,
    model_dir: str,
    training: dict[str, Any],
    model_uri: str = "",
    backend: str = "auto",
    nproc_per_node: int = 2,
    job: dict[str, Any] | None = None,
    bridge: str = "artifacts",
    workspace_path: str = "",
    run_id: str = "local",
    task_name: str = "train",
    wait_timeout_seconds: int = 86400,
    keep_job: bool = False,
    max_restarts: int = 0,
    poll_interval_seconds: int = 5,
    client_factory: Callable[[], Any] | None = None,
    echo: Callable[[str], None] = lambda line: print(line, end="" if line.endswith("\n") else "\n", flush=True),
) -> dict[str, Any]:
    """Trains and leaves the exported model in `model_dir`; returns the run's metrics summary.

    Every setting is checked before anything is launched.

    Raises:
        ConfigError: a bad setting, naming it.
        TrainingFailed / JobFailed: training failed, with the log tail.
    """
    backend = resolve_backend(backend, BACKENDS, "pytorchjob", ConfigError)
    if bridge not in BRIDGES:
        raise ConfigError(f"bridge={bridge!r}: expected one of {list(BRIDGES)}.")
    if os.path.exists(model_dir) and os.listdir(model_dir):
        raise ConfigError(f"the output model directory {model_dir!r} is not empty.")
    work_dir = os.path.join(os.path.dirname(os.path.abspath(model_dir)), WORK_DIR_NAME)
    if backend == "local":
        config = _config(
            training,
            train_features.path,
            validation_features.path,
            preprocessor.path,
            output_uri=os.path.join(work_dir, "model"),
            checkpoint_uri=os.path.join(work_dir, "checkpoints"),
        )
        _check_label(config)
        run_torchrun(config, nproc_per_node=nproc_per_node, max_restarts=max_restarts, echo=echo)
        return _collect(config.output_uri, model_dir)
    return _train_on_cluster(
        train_features=train_features,
        validation_features=validation_features,
        preprocessor=preprocessor,
        model_dir=model_dir,
        model_uri=model_uri or model_dir,
        training=training,
        job=job or {},
        bridge=bridge,
        workspace_path=workspace_path,
        run_id=run_id,
        task_name=task_name,
        wait_timeout_seconds=wait_timeout_seconds,
        keep_job=keep_job,
        max_restarts=max_restarts,
        poll_interval_seconds=poll_interval_seconds,
        client_factory=client_factory,
        echo=echo,
    )


@dataclasses.dataclass
class TrainStepResult:
    """What the `train_pytorchjob` step records: the model's metadata, its metrics, the curves page."""

    metadata: dict[str, Any]
    metrics: dict[str, float]
    curves_html: str


def train_step(
    *,
    train_features: Inputs,
    validation_features: Inputs,
    preprocessor: Inputs,
    model_dir: str,
    model_uri: str,
    training: dict[str, Any],
    job: dict[str, Any],
    passed_through: dict[str, Any],
    **options: Any,
) -> TrainStepResult:
    """What the `train_pytorchjob` component does: train, then shape what the step records.

    `passed_through` is what KFP passes through from the task (its `TaskConfig`: resources,
    tolerations, node selector, affinity, env, volumes); the task's node selector and
    tolerations are merged with the component's own. `options` are `train`'s.
    """
    from mlworkloads.training.report import curves_html
    from mlworkloads.training.sweep import HYPERPARAMETERS_KEY, recorded_hyperparameters

    training = {k: v for k, v in training.items() if v is not None}  # None: TrainConfig's default
    job = {
        **job,
        "node_selector": {**(passed_through.get("node_selector") or {}), **(job.get("node_selector") or {})},
        "tolerations": [*(passed_through.get("tolerations") or []), *(job.get("tolerations") or [])],
        "resources": passed_through.get("resources") or {},
        "affinity": passed_through.get("affinity") or {},
        "extra_env": passed_through.get("env") or [],
        "volumes": passed_through.get("volumes") or [],
        "volume_mounts": passed_through.get("volume_mounts") or [],
    }
    summary = train(
        train_features=train_features,
        validation_features=validation_features,
        preprocessor=preprocessor,
        model_dir=model_dir,
        model_uri=model_uri,
        training=training,
        job=job,
        **options,
    )
    final = {key: round(float(value), 6) for key, value in summary["metrics"].items()}
    # The settings as the trainer took them (its defaults filled in), for the sweep to read back.
    config = _config(training, train_features.uri, validation_features.uri, preprocessor.uri, model_dir, model_dir)
    metadata = {
        HYPERPARAMETERS_KEY: recorded_hyperparameters(config),
        "framework": "pytorch",
        "torch_version": summary.get("torch_version", ""),
        "world_size": summary.get("world_size", 0),
        "best_epoch": summary["best_epoch"] + 1,
        **final,
    }
    metrics = {
        **final,
        "samples_per_second": round(float(summary["samples_per_second"]), 1),
        "epochs_run": summary["epochs_run"],
    }
    return TrainStepResult(metadata=metadata, metrics=metrics, curves_html=curves_html(summary["history"]))


def run_scoped_job_name(run_id: str, task_name: str, training: dict[str, Any], model_uri: str) -> str:
    """The training job's name: the same for a retried pod of one task, distinct for every other.

    The model's output URI is unique per task execution (KFP salts it per driver run) and kept
    when a pod is retried: with the config it tells apart ParallelFor iterations and a team's
    tasks that left task_name as the placeholder.
    """
    from mlworkloads.training.pytorchjob_spec import job_name

    identity = json.dumps({"training": training, "model_uri": model_uri}, sort_keys=True)
    return job_name(run_id, resolve_task_name(task_name, "train-pytorchjob"), identity)


def _shared_root(bridge: str, settings, workspace_path: str) -> str:
    """Where the step and the replicas both see the staged inputs and the model."""
    if bridge == "volume":
        if not settings.pvc_name:
            raise ConfigError("bridge='volume' needs pvc_name: the PVC both the step and the replicas mount.")
        return settings.pvc_mount
    if not workspace_path:
        raise ConfigError(
            "bridge='workspace' needs workspace_path: pass dsl.WORKSPACE_PATH_PLACEHOLDER from a pipeline "
            "with a PipelineConfig workspace."
        )
    mounted = [m.get("mountPath") for m in settings.volume_mounts]
    if not any(path and workspace_path.startswith(path) for path in mounted):
        raise ConfigError(
            f"bridge='workspace': no volume passed through to this step is mounted at {workspace_path!r}, so "
            "the replicas could not see it; run the step in a pipeline with a PipelineConfig workspace."
        )
    return workspace_path


def _config(training: dict[str, Any], train_uri, validation_uri, preprocessor_uri, output_uri, checkpoint_uri):
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {
        "train_uri",
        "validation_uri",
        "preprocessor_uri",
        "output_uri",
        "checkpoint_uri",
    }
    training = dict(training)
    if isinstance(training.get("hidden_sizes"), list):
        # KFP carries numbers in lists as floats (protobuf Value); 128.0 means 128.
        training["hidden_sizes"] = [
            int(h) if isinstance(h, float) and h.is_integer() else h for h in training["hidden_sizes"]
        ]
    unknown = sorted(set(training) - known)
    if unknown:
        raise ConfigError(f"unknown training setting(s) {unknown}; known: {sorted(known)}.")
    config = TrainConfig(
        train_uri=train_uri,
        validation_uri=validation_uri,
        preprocessor_uri=preprocessor_uri,
        output_uri=output_uri,
        checkpoint_uri=checkpoint_uri,
        **training,
    )
    if config.model_factory:
        from mlworkloads.training.model import resolve_factory

        resolve_factory(config.model_factory)
    return config


def _check_label(config: TrainConfig) -> None:
    """Fails before launch when the features lack the encoded label (wrong artifact wired in)."""
    import pyarrow.parquet as pq

    from mlworkloads.data.preprocessor import LABEL_COLUMN

    for name, uri in (("train", config.train_uri), ("validation", config.validation_uri)):
        fs, path = filesystem(uri)
        with fs.open(path, "rb") as f:
            columns = pq.read_schema(f).names
        if LABEL_COLUMN not in columns:
            raise ConfigError(
                f"the {name} features at {uri!r} have no label column ({LABEL_COLUMN!r}): pass the "
                "`*_features` outputs of fit_preprocessor, not the raw splits."
            )


def _collect(exported_uri: str, model_dir: str) -> dict[str, Any]:
    """Copies the exported model into the step's output directory; returns metrics.json."""
    fs, root = filesystem(exported_uri)
    os.makedirs(model_dir, exist_ok=True)
    for remote in fs.ls(root, detail=False):
        name = os.path.basename(remote.rstrip("/"))
        if fs.isdir(remote):
            continue
        fs.get(remote, os.path.join(model_dir, name))
    with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def _train_on_cluster(
    *,
    train_features: Inputs,
    validation_features: Inputs,
    preprocessor: Inputs,
    model_dir: str,
    model_uri: str,
    training: dict[str, Any],
    job: dict[str, Any],
    bridge: str,
    workspace_path: str,
    run_id: str,
    task_name: str,
    wait_timeout_seconds: int,
    keep_job: bool,
    max_restarts: int,
    poll_interval_seconds: int,
    client_factory: Callable[[], Any] | None,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    from kubeflow.training import TrainingClient

    from mlworkloads.kube import RUN_LABEL, label_value, pod_namespace, resolve_run_id
    from mlworkloads.training.pytorchjob import PyTorchJobRunner
    from mlworkloads.training.pytorchjob_spec import JobSettings, build_job

    settings = JobSettings(max_restarts=max_restarts, **job)
    run_id = resolve_run_id(run_id)
    settings.labels = {**settings.labels, RUN_LABEL: label_value(run_id)}
    name = run_scoped_job_name(run_id, task_name, training, model_uri)
    namespace = settings.namespace or pod_namespace()
    if bridge in ("volume", "workspace"):
        staging = os.path.join(_shared_root(bridge, settings, workspace_path), name)
        inputs = {}
        for key, item in (
            ("train", train_features),
            ("validation", validation_features),
            ("preprocessor", preprocessor),
        ):
            target = os.path.join(staging, "inputs", key)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(item.path, target)
            inputs[key] = target
    else:
        staging = artifact_uri(model_uri).rstrip("/").rsplit("/", 1)[0] + f"/{name}"
        inputs = {
            "train": artifact_uri(train_features.uri),
            "validation": artifact_uri(validation_features.uri),
            "preprocessor": artifact_uri(preprocessor.uri),
        }
        # The replicas reach KFP's store as the step does: its location, and its keys by
        # secretKeyRef to the Secret KFP's launcher reads (never a value in the manifest).
        try:
            store = artifact_store.store_for(*inputs.values(), staging)
        except artifact_store.ArtifactStoreError as err:
            raise ConfigError(f"the replicas cannot reach the inputs: {err}") from err
        if store is not None:
            settings.extra_env = [*settings.extra_env, *store.replica_env()]
    config = _config(
        training,
        inputs["train"],
        inputs["validation"],
        inputs["preprocessor"],
        output_uri=f"{staging}/model",
        checkpoint_uri=f"{staging}/checkpoints",
    )
    manifest = build_job(name, namespace, settings, config)
    # KUBECONFIG is read now, not when the kubernetes package was imported; inside a pod the
    # client falls back to the in-cluster service account.
    client = (
        client_factory()
        if client_factory
        else TrainingClient(config_file=os.environ.get("KUBECONFIG") or None, namespace=namespace)
    )
    runner = PyTorchJobRunner(client, namespace, echo=echo)
    runner.run(manifest, wait_timeout=wait_timeout_seconds, poll_interval=poll_interval_seconds, keep_job=keep_job)
    summary = _collect(config.output_uri, model_dir)
    summary["job_name"] = name
    return summary
