"""Launching any training command as distributed training: here under torchrun, or as a cluster job.

The one launcher every training step goes through (`launch_training_job` for a team's image and
command, `train_pytorchjob` for the built-in trainer). It picks the backend, makes the inputs
reachable from every node, runs the command on each node under torchrun, and copies the model
the job wrote into the step's output directory.

What a training command gets (the contract a team's code relies on), as environment variables:

- `MLWORKLOADS_MODEL_DIR`: where rank 0 writes the model; its files become the step's model
  artifact. A `metrics.json` there (a JSON object) becomes the step's metrics: its numeric
  top-level values.
- `MLWORKLOADS_CHECKPOINT_DIR`: where to keep checkpoints; the same for a retried step, so a
  rerun can resume.
- `MLWORKLOADS_INPUT_<NAME>`: each input artifact (`<NAME>` upper-cased, e.g.
  `MLWORKLOADS_INPUT_TRAIN_DATA`).

Locally, and with the `volume` and `workspace` bridges, these are paths. With the `artifacts`
bridge (the default on a cluster) they are URIs in KFP's object store (`s3://...`), and the nodes
get the store's endpoint and keys (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ... by secretKeyRef):
read and write them with fsspec, or pick a bridge that gives paths. The data bridges:
- `artifacts`: the nodes read the inputs at their artifact URIs and write the model under a
  staging prefix beside the output artifact;
- `volume`: the step copies the inputs onto a PVC that both the step and the nodes mount;
- `workspace`: the same through the KFP (2.15+) workspace, the run's own PVC: the pipeline passes
  `dsl.WORKSPACE_PATH_PLACEHOLDER`, and KFP passes the workspace volume through to the step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable
from typing import Any

from mlworkloads import artifact_store
from mlworkloads.data.storage import artifact_uri, filesystem
from mlworkloads.errors import ArtifactStoreError
from mlworkloads.kube import resolve_backend, resolve_task_name
from mlworkloads.training.errors import ConfigError

#: "auto": inside a pod the job kind the cluster serves (TrainJob first), elsewhere local.
BACKENDS = ("auto", "local", "pytorchjob", "xgboostjob", "trainjob")
BRIDGES = ("artifacts", "volume", "workspace")
#: The local backend's scratch directory (the model as written, checkpoints) beside the output.
WORK_DIR_NAME = "training-work"
MODEL_DIR_ENV = "MLWORKLOADS_MODEL_DIR"
CHECKPOINT_DIR_ENV = "MLWORKLOADS_CHECKPOINT_DIR"
INPUT_ENV_PREFIX = "MLWORKLOADS_INPUT_"
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class Inputs:
    """One input artifact: its local path in the step and its URI in the object store."""

    path: str
    uri: str


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where the training processes find their inputs and put the model and checkpoints."""

    inputs: dict[str, str]
    model_dir: str
    checkpoint_dir: str

    def env(self) -> dict[str, str]:
        """The contract's variables (see the module's docstring)."""
        variables = {MODEL_DIR_ENV: self.model_dir, CHECKPOINT_DIR_ENV: self.checkpoint_dir}
        variables.update({input_env(name): location for name, location in self.inputs.items()})
        return variables


def input_env(name: str) -> str:
    """The variable that names input `name`: `train_data` -> `MLWORKLOADS_INPUT_TRAIN_DATA`."""
    return INPUT_ENV_PREFIX + "".join(c if c.isalnum() else "_" for c in name).upper()


@dataclasses.dataclass
class LaunchResult:
    """What a launch did: the job it ran (`local` for torchrun here) and the model's files."""

    job_name: str
    job_kind: str
    files: list[str]

    def metrics(self, model_dir: str) -> dict[str, Any]:
        """`metrics.json` in the collected model directory, or {} when the job wrote none."""
        path = os.path.join(model_dir, METRICS_FILE)
        if not os.path.isfile(path):
            return {}
        with open(path, encoding="utf-8") as f:
            try:
                metrics = json.load(f)
            except json.JSONDecodeError as err:
                raise ConfigError(f"the job's {METRICS_FILE} is not valid JSON: {err}") from err
        if not isinstance(metrics, dict):
            raise ConfigError(f"the job's {METRICS_FILE} must hold a JSON object, not {type(metrics).__name__}.")
        return metrics


Command = list[str] | Callable[[Locations], list[str]]


def launch_job(
    *,
    command: Command,
    model_dir: str,
    inputs: dict[str, Inputs] | None = None,
    model_uri: str = "",
    backend: str = "auto",
    nproc_per_node: int = 1,
    job: dict[str, Any] | None = None,
    bridge: str = "artifacts",
    workspace_path: str = "",
    runtime: str = "",
    framework: str = "torch",
    run_id: str = "local",
    task_name: str = "train",
    default_task_name: str = "launch-training-job",
    identity: str = "",
    wait_timeout_seconds: int = 86400,
    keep_job: bool = False,
    max_restarts: int = 0,
    poll_interval_seconds: float = 5,
    explain_failure: Callable[[Locations], str] | None = None,
    echo: Callable[[str], None] = lambda line: print(line, end="" if line.endswith("\n") else "\n", flush=True),
) -> LaunchResult:
    """Runs `command` as distributed training and leaves the model it wrote in `model_dir`.

    Every setting is checked before anything is launched.

    Args:
        command: What each process runs (`["python", "train.py"]`), or a function of the
            `Locations` that returns it (the built-in trainer's config names them).
        model_dir: The step's output directory for the model (empty or absent).
        inputs: Input artifacts by name, made reachable to every node.
        model_uri: The output artifact's URI (the staging prefix of the `artifacts` bridge is
            beside it); `model_dir` when empty.
        backend: One of `BACKENDS`.
        nproc_per_node: Processes on this machine with the local backend.
        job: `JobSettings` fields for a cluster job (image, nodes, compute, scheduling, ...).
        runtime: The TrainJob's ClusterTrainingRuntime (`torch-distributed`, or for XGBoost
            `xgboost-distributed`, when empty).
        framework: "torch": every process runs under torchrun (a PyTorchJob or the torch
            runtime); "xgboost": one XGBoost worker per node, started as XGBoostJob starts them
            (an XGBoostJob, the xgboost runtime, or `spawn.py` here; see `xgboost_world.py`).
        run_id, task_name: Make the job's name: the same for a retried step, distinct otherwise.
        default_task_name: What an unresolved task-name placeholder stands for.
        identity: Tells apart tasks that share a task name (ParallelFor iterations).
        explain_failure: Adds to a local failure what the caller knows (where to resume from).

    Raises:
        ConfigError: a bad setting, naming it.
        TrainingFailed / JobFailed: training failed, with the log tail (and the failing node).
    """
    inputs = inputs or {}
    job = dict(job or {})
    # In a pod, "auto" stays "auto": the cluster's own kinds decide (job_kinds.job_kind_for).
    backend = resolve_backend(backend, BACKENDS, "auto", ConfigError)
    from mlworkloads.training.job_kinds import check_framework

    check_framework("auto" if backend == "local" else backend, framework)
    if bridge not in BRIDGES:
        raise ConfigError(f"bridge={bridge!r}: expected one of {list(BRIDGES)}.")
    if os.path.exists(model_dir) and os.listdir(model_dir):
        raise ConfigError(f"the output model directory {model_dir!r} is not empty.")
    if backend == "local":
        return _launch_here(
            command,
            model_dir,
            inputs,
            job.get("env") or {},
            nproc_per_node,
            max_restarts,
            explain_failure,
            echo,
            framework,
        )
    from mlworkloads.kube import RUN_LABEL, label_value, pod_namespace, resolve_run_id
    from mlworkloads.training.job_kinds import build_manifest, job_kind_for
    from mlworkloads.training.job_runner import JobRunner
    from mlworkloads.training.job_settings import JobSettings, job_name
    from mlworkloads.training.torchrun import cluster_command

    settings = JobSettings(max_restarts=max_restarts, **job)
    run_id = resolve_run_id(run_id)
    settings.labels = {**settings.labels, RUN_LABEL: label_value(run_id)}
    model_uri = model_uri or model_dir
    name = job_name(run_id, resolve_task_name(task_name, default_task_name), identity or model_uri)
    namespace = settings.namespace or pod_namespace()
    locations = _stage(name, inputs, model_uri, bridge, settings, workspace_path)
    settings.env = {**settings.env, **locations.env()}
    program = command(locations) if callable(command) else command
    kind = job_kind_for(backend, framework)
    container_command = cluster_command(program, max_restarts) if framework == "torch" else program
    manifest = build_manifest(kind, name, namespace, settings, container_command, runtime, framework)
    JobRunner(kind, namespace, echo=echo).run(
        manifest, name, wait_timeout=wait_timeout_seconds, poll_interval=poll_interval_seconds, keep_job=keep_job
    )
    return LaunchResult(name, kind.kind, collect_model(locations.model_dir, model_dir))


def task_config_fields(task_config: Any) -> dict[str, Any]:
    """What KFP passed through from the task (its `dsl.TaskConfig`, None when there is none),
    as `merge_task_config` takes it. Called from component bodies: it reads the object's
    attributes and imports nothing of KFP (a body must not import `mlworkloads.components`,
    whose modules define components while KFP's executor runs one)."""
    names = ("resources", "tolerations", "node_selector", "affinity", "env", "volumes", "volume_mounts")
    return {name: getattr(task_config, name, None) for name in names}


def merge_task_config(job: dict[str, Any], passed_through: dict[str, Any]) -> dict[str, Any]:
    """`JobSettings` fields with what KFP passes through from the task added.

    `passed_through` is the task's `TaskConfig` (resources, tolerations, node selector,
    affinity, env, volumes); the task's node selector and tolerations are merged with the
    component's own, the rest taken as the task set them.
    """
    return {
        **job,
        "node_selector": {**(passed_through.get("node_selector") or {}), **(job.get("node_selector") or {})},
        "tolerations": [*(passed_through.get("tolerations") or []), *(job.get("tolerations") or [])],
        "resources": passed_through.get("resources") or {},
        "affinity": passed_through.get("affinity") or {},
        "extra_env": passed_through.get("env") or [],
        "volumes": passed_through.get("volumes") or [],
        "volume_mounts": passed_through.get("volume_mounts") or [],
    }


def _launch_here(
    command, model_dir, inputs, env, nproc_per_node, max_restarts, explain_failure, echo, framework
) -> LaunchResult:
    from mlworkloads.training.local import run_local

    work_dir = os.path.join(os.path.dirname(os.path.abspath(model_dir)), WORK_DIR_NAME)
    locations = Locations(
        inputs={name: item.path for name, item in inputs.items()},
        model_dir=os.path.join(work_dir, "model"),
        checkpoint_dir=os.path.join(work_dir, "checkpoints"),
    )
    program = command(locations) if callable(command) else command
    run_local(
        program,
        nproc_per_node,
        max_restarts,
        echo=echo,
        env={**env, **locations.env()},
        explain_failure=(lambda: explain_failure(locations)) if explain_failure else (lambda: ""),
        framework=framework,
    )
    return LaunchResult("local", "local", collect_model(locations.model_dir, model_dir))


def _stage(
    name: str, inputs: dict[str, Inputs], model_uri: str, bridge: str, settings, workspace_path: str
) -> Locations:
    """Makes the inputs reachable from every node; returns where the nodes see them."""
    if bridge in ("volume", "workspace"):
        staging = os.path.join(_shared_root(bridge, settings, workspace_path), name)
        seen = {}
        for key, item in inputs.items():
            target = os.path.join(staging, "inputs", key)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(item.path):
                shutil.copytree(item.path, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(item.path, target)
            seen[key] = target
        return Locations(seen, f"{staging}/model", f"{staging}/checkpoints")
    staging = artifact_uri(model_uri).rstrip("/").rsplit("/", 1)[0] + f"/{name}"
    seen = {key: artifact_uri(item.uri) for key, item in inputs.items()}
    # The nodes reach KFP's store as the step does: its location, and its keys by secretKeyRef
    # to the Secret KFP's launcher reads (never a value in the manifest).
    try:
        store = artifact_store.store_for(*seen.values(), staging)
    except ArtifactStoreError as err:
        raise ConfigError(f"the training job's nodes cannot reach the inputs: {err}") from err
    if store is not None:
        settings.extra_env = [*settings.extra_env, *store.replica_env()]
    return Locations(seen, f"{staging}/model", f"{staging}/checkpoints")


def _shared_root(bridge: str, settings, workspace_path: str) -> str:
    """Where the step and the nodes both see the staged inputs and the model."""
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


def collect_model(written: str, model_dir: str) -> list[str]:
    """Copies the model the job wrote (every file, subdirectories too) into `model_dir`.

    Raises:
        ConfigError: the job wrote nothing there (it ignored `MLWORKLOADS_MODEL_DIR`).
    """
    fs, root = filesystem(written)
    files = sorted(fs.find(root)) if fs.exists(root) else []
    if not files:
        raise ConfigError(
            f"the training job finished but wrote no model to {written!r}: write it (from rank 0) to the "
            f"directory ${MODEL_DIR_ENV} names."
        )
    os.makedirs(model_dir, exist_ok=True)
    copied = []
    for remote in files:
        relative = os.path.relpath(remote, root.rstrip("/"))
        local = os.path.join(model_dir, relative)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        fs.get(remote, local)
        copied.append(relative)
    return copied


@dataclasses.dataclass
class LaunchStepResult:
    """What the `launch_training_job` step records: the model's metadata and the job's metrics."""

    metadata: dict[str, Any]
    metrics: dict[str, float]


def launch_step(
    *,
    command: list[str],
    args: list[str],
    inputs: dict[str, Inputs],
    model_dir: str,
    model_uri: str,
    job: dict[str, Any],
    passed_through: dict[str, Any],
    **options: Any,
) -> LaunchStepResult:
    """What the `launch_training_job` component does: launch, then shape what the step records.

    `options` are `launch_job`'s; `passed_through` is the task's `TaskConfig` (`merge_task_config`).
    Inputs that were not wired (None) are left out, so their variables are not set.
    """
    if not isinstance(args, list):
        raise ConfigError(f"args={args!r}: expected a list of strings.")
    program = [*command, *(_argument(a) for a in args)] if isinstance(command, list) else command
    result = launch_job(
        command=program,
        model_dir=model_dir,
        model_uri=model_uri,
        inputs={name: item for name, item in inputs.items() if item is not None},
        job=merge_task_config(job, passed_through),
        identity=json.dumps({"command": program, "model_uri": model_uri}, sort_keys=True),
        **options,
    )
    reported = result.metrics(model_dir)
    metrics = {
        key: float(value)
        for key, value in reported.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }
    metadata = {"job_kind": result.job_kind, "job_name": result.job_name, "files": result.files, **metrics}
    return LaunchStepResult(metadata=metadata, metrics=metrics)


def _argument(value: Any) -> str:
    """One command-line argument: KFP carries the numbers in a list as floats (protobuf Value),
    so a pipeline's `epochs` of 8 arrives as 8.0; a whole float is written as the integer."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
