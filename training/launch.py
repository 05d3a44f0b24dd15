"""What the built-in training components do: train a model family, record what it did.

Two families: the network (`train_pytorchjob`: DDP under torchrun, as a TrainJob or
PyTorchJob) and gradient-boosted trees (`train_xgboost`: XGBoost workers, as a TrainJob on the
`xgboost-distributed` runtime or an XGBoostJob). Each built-in trainer is one more command for
the one launcher (`job_launch.launch_job`): its config names the locations the launcher gives
the job (inputs, model and checkpoint directories), and the job's `metrics.json` is the
trainer's summary. Backends, job kinds and data bridges are the launcher's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from mlworkloads.data.storage import filesystem
from mlworkloads.kube import resolve_backend
from mlworkloads.training.boosting_config import BoostingConfig
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.job_launch import BACKENDS, Inputs, Locations, launch_job, merge_task_config
from mlworkloads.training.local import TRAINER_COMMAND

__all__ = ["FAMILIES", "Inputs", "TrainStepResult", "run_scoped_job_name", "train", "train_step", "trainer_command"]


@dataclasses.dataclass(frozen=True)
class Family:
    """A built-in model family: its config, the command every worker runs, how workers start."""

    name: str
    config_class: type
    command: tuple[str, ...]
    framework: str
    #: The name an unresolved task-name placeholder stands for in the job's name (its component's).
    task_name: str


FAMILIES = {
    "network": Family("network", TrainConfig, tuple(TRAINER_COMMAND), "torch", "train-pytorchjob"),
    "xgboost": Family(
        "xgboost", BoostingConfig, ("python", "-m", "mlworkloads.training.boosting"), "xgboost", "train-xgboost"
    ),
}
#: The name an unresolved task-name placeholder stands for in the network's job's name.
TASK_NAME = FAMILIES["network"].task_name
#: The config fields the launcher fills in from the job's locations.
LOCATION_FIELDS = ("train_uri", "validation_uri", "preprocessor_uri", "output_uri", "checkpoint_uri")


def family_for(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"model_family={name!r}: expected one of {sorted(FAMILIES)}.")
    return FAMILIES[name]


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
    runtime: str = "",
    run_id: str = "local",
    task_name: str = "train",
    wait_timeout_seconds: int = 86400,
    keep_job: bool = False,
    max_restarts: int = 0,
    poll_interval_seconds: int = 5,
    model_family: str = "network",
    echo: Callable[[str], None] = lambda line: print(line, end="" if line.endswith("\n") else "\n", flush=True),
) -> dict[str, Any]:
    """Trains a `model_family` model and leaves it in `model_dir`; returns the run's metrics summary.

    Every setting is checked before anything is launched.

    Raises:
        ConfigError: a bad setting, naming it.
        TrainingFailed / JobFailed: training failed, with the log tail.
    """
    family = family_for(model_family)
    _config(
        training, "train", "validation", "preprocessor", "model", "checkpoints", family
    )  # refuse bad settings first
    if resolve_backend(backend, BACKENDS, "auto", ConfigError) == "local":
        _check_label({"train": train_features.path, "validation": validation_features.path})

    def config(at: Locations):
        return _config(
            training,
            at.inputs["train"],
            at.inputs["validation"],
            at.inputs["preprocessor"],
            at.model_dir,
            at.checkpoint_dir,
            family,
        )

    def resume_hint(at: Locations) -> str:
        from mlworkloads.training.local import resume_hint

        return resume_hint(at.checkpoint_dir)

    result = launch_job(
        command=lambda at: [*family.command, "--config-json", config(at).to_json()],
        model_dir=model_dir,
        inputs={"train": train_features, "validation": validation_features, "preprocessor": preprocessor},
        model_uri=model_uri,
        backend=backend,
        nproc_per_node=nproc_per_node,
        job=job,
        bridge=bridge,
        workspace_path=workspace_path,
        runtime=runtime,
        framework=family.framework,
        run_id=run_id,
        task_name=task_name,
        default_task_name=family.task_name,
        identity=_identity(training, model_uri or model_dir),
        wait_timeout_seconds=wait_timeout_seconds,
        keep_job=keep_job,
        max_restarts=max_restarts,
        poll_interval_seconds=poll_interval_seconds,
        explain_failure=resume_hint,
        echo=echo,
    )
    summary = result.metrics(model_dir)
    summary.update(job_name=result.job_name, job_kind=result.job_kind)
    return summary


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
    """What `train_pytorchjob` and `train_xgboost` do: train, then shape what the step records.

    `passed_through` is what KFP passes through from the task (its `TaskConfig`: resources,
    tolerations, node selector, affinity, env, volumes); the task's node selector and
    tolerations are merged with the component's own. `options` are `train`'s.
    """
    from mlworkloads.training.report import curves_html
    from mlworkloads.training.sweep import HYPERPARAMETERS_KEY, recorded_hyperparameters

    training = {k: v for k, v in training.items() if v is not None}  # None: the config's default
    family = family_for(options.get("model_family", "network"))
    job = merge_task_config(job, passed_through)
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
    config = _config(
        training, train_features.uri, validation_features.uri, preprocessor.uri, model_dir, model_dir, family
    )
    metadata = {
        HYPERPARAMETERS_KEY: recorded_hyperparameters(config),
        "model_family": family.name,
        "world_size": summary.get("world_size", 0),
        **final,
    }
    if family.name == "xgboost":
        metadata.update(framework="xgboost", xgboost_version=summary.get("xgboost_version", ""))
        metadata["best_round"] = summary["best_round"]
        metrics = {
            **final,
            "rounds_run": summary["rounds_run"],
            "training_seconds": round(summary["training_seconds"], 2),
        }
    else:
        metadata.update(framework="pytorch", torch_version=summary.get("torch_version", ""))
        metadata["best_epoch"] = summary["best_epoch"] + 1
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
    from mlworkloads.kube import resolve_task_name
    from mlworkloads.training.job_settings import job_name

    return job_name(run_id, resolve_task_name(task_name, TASK_NAME), _identity(training, model_uri))


def _identity(training: dict[str, Any], model_uri: str) -> str:
    return json.dumps({"training": training, "model_uri": model_uri}, sort_keys=True)


def trainer_command(config: TrainConfig, max_restarts: int = 0) -> list[str]:
    """The built-in trainer as every node of a cluster job runs it, its config inline."""
    from mlworkloads.training.torchrun import cluster_command

    return cluster_command([*TRAINER_COMMAND, "--config-json", config.to_json()], max_restarts)


def _config(
    training: dict[str, Any],
    train_uri,
    validation_uri,
    preprocessor_uri,
    output_uri,
    checkpoint_uri,
    family: Family = FAMILIES["network"],
):
    known = {f.name for f in dataclasses.fields(family.config_class)} - set(LOCATION_FIELDS)
    training = dict(training)
    if isinstance(training.get("hidden_sizes"), list):
        # KFP carries numbers in lists as floats (protobuf Value); 128.0 means 128.
        training["hidden_sizes"] = [
            int(h) if isinstance(h, float) and h.is_integer() else h for h in training["hidden_sizes"]
        ]
    unknown = sorted(set(training) - known)
    if unknown:
        raise ConfigError(f"unknown training setting(s) {unknown}; known: {sorted(known)}.")
    config = family.config_class(
        train_uri=train_uri,
        validation_uri=validation_uri,
        preprocessor_uri=preprocessor_uri,
        output_uri=output_uri,
        checkpoint_uri=checkpoint_uri,
        **training,
    )
    if getattr(config, "model_factory", ""):
        from mlworkloads.training.model import resolve_factory

        resolve_factory(config.model_factory)
    return config


def _check_label(features: dict[str, str]) -> None:
    """Fails before launch when the features lack the encoded label (wrong artifact wired in)."""
    import pyarrow.parquet as pq

    from mlworkloads.data.preprocessor import LABEL_COLUMN

    for name, uri in features.items():
        fs, path = filesystem(uri)
        with fs.open(path, "rb") as f:
            columns = pq.read_schema(f).names
        if LABEL_COLUMN not in columns:
            raise ConfigError(
                f"the {name} features at {uri!r} have no label column ({LABEL_COLUMN!r}): pass the "
                "`*_features` outputs of fit_preprocessor, not the raw splits."
            )
