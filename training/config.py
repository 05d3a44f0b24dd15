"""The trainer's configuration: one validated dataclass, serialised as JSON for torchrun."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from mlworkloads.training.errors import ConfigError

LR_SCHEDULES = ("cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclasses.dataclass(kw_only=True)
class TrackedConfig:
    """What a trainer's config says about experiment tracking (see `TrainConfig`'s attributes)."""

    tracking_uri: str = ""
    tracking_experiment: str = "mlworkloads"
    tracking_run_key: str = ""
    tracking_optional: bool = False
    tracking_child: str = ""

    @property
    def tracking(self):
        from mlworkloads.training.tracking import TrackingSettings

        return TrackingSettings(
            self.tracking_uri,
            self.tracking_experiment,
            self.tracking_run_key,
            self.tracking_optional,
            self.tracking_child,
        )


@dataclasses.dataclass(kw_only=True)
class TrainConfig(TrackedConfig):
    """Everything one training run needs.

    Attributes:
        train_uri: Preprocessed train features (Parquet, as written by `fit_preprocessor`).
        validation_uri: Preprocessed validation features.
        preprocessor_uri: The fitted preprocessor JSON.
        output_uri: Directory the exported model is written to (local path or fsspec URI).
        checkpoint_uri: Directory of the resumable checkpoint; empty means `<output_uri>-checkpoints`.
        hidden_sizes: Widths of the MLP's hidden layers.
        dropout: Dropout after each hidden layer.
        embedding_dim: Embedding width per categorical column; 0 picks min(16, (cardinality + 1) // 2).
        model_factory: Optional `module:function` that builds the `nn.Module` from the feature spec.
        epochs: Maximum number of epochs.
        batch_size: Global batch size (split evenly across processes).
        learning_rate: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        lr_schedule: "cosine" (decay to 0 over the run) or "constant".
        grad_clip: Clip the gradient norm to this; 0 turns clipping off.
        early_stopping_patience: Stop after this many epochs without a better validation metric; 0 never.
        seed: Seeds initialisation, shuffling and dropout: the same seed repeats a run.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        tracking_uri: MLflow tracking server rank 0 logs parameters, per-epoch metrics and the
            history into; empty for `MLFLOW_TRACKING_URI`, and no tracking when that is unset.
        tracking_experiment: The MLflow experiment.
        tracking_run_key: The pipeline run's id: the steps of one pipeline run share one MLflow run.
        tracking_optional: Train without tracking when the server cannot be reached (else fail).
        tracking_child: Log into the child run of this key under the pipeline run's MLflow run
            (a sweep's trial); empty for the pipeline run's own.
    """

    train_uri: str
    validation_uri: str
    preprocessor_uri: str
    output_uri: str
    checkpoint_uri: str = ""
    hidden_sizes: list[int] = dataclasses.field(default_factory=lambda: [128, 64])
    dropout: float = 0.1
    embedding_dim: int = 0
    model_factory: str = ""
    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    early_stopping_patience: int = 3
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        for name in ("train_uri", "validation_uri", "preprocessor_uri", "output_uri"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is empty: the trainer needs it.")
        check_positive_int(self, "epochs")
        check_positive_int(self, "batch_size")
        check_number(self, "learning_rate", low=0, low_inclusive=False)
        check_number(self, "weight_decay", low=0)
        check_number(self, "grad_clip", low=0)
        check_number(self, "dropout", low=0, high=1)
        if not isinstance(self.early_stopping_patience, int) or self.early_stopping_patience < 0:
            raise ConfigError(f"early_stopping_patience={self.early_stopping_patience!r}: expected 0 or more.")
        if not isinstance(self.embedding_dim, int) or self.embedding_dim < 0:
            raise ConfigError(f"embedding_dim={self.embedding_dim!r}: expected 0 (auto) or a positive int.")
        if not self.hidden_sizes or not all(isinstance(h, int) and h > 0 for h in self.hidden_sizes):
            raise ConfigError(f"hidden_sizes={self.hidden_sizes!r}: expected a non-empty list of positive ints.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule={self.lr_schedule!r}: expected one of {list(LR_SCHEDULES)}.")
        if self.device not in DEVICES:
            raise ConfigError(f"device={self.device!r}: expected one of {list(DEVICES)}.")
        if self.model_factory and (self.model_factory.count(":") != 1 or self.model_factory.startswith(":")):
            raise ConfigError(f"model_factory={self.model_factory!r}: expected 'package.module:function'.")
        if not self.checkpoint_uri:
            # Beside the model directory, not inside it: the model directory holds only the model.
            self.checkpoint_uri = self.output_uri.rstrip("/") + "-checkpoints"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return config_from_json(cls, text, "training")


def config_text(argv: list[str] | None, prog: str, description: str | None) -> str:
    """A trainer's config from its command line: `--config PATH_OR_URI` or `--config-json TEXT`."""
    import argparse

    from mlworkloads.data.storage import read_bytes

    parser = argparse.ArgumentParser(prog=prog, description=description)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="Path or URI of the config JSON.")
    source.add_argument("--config-json", help="The config as a JSON string.")
    args = parser.parse_args(argv)
    return args.config_json if args.config_json else read_bytes(args.config).decode()


def config_from_json(cls, text: str, what: str):
    """A config dataclass from its JSON object, refusing unknown settings by name."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"the {what} config is not valid JSON: {err}") from err
    if not isinstance(values, dict):
        raise ConfigError(f"the {what} config must be a JSON object, not {type(values).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {unknown}; known: {sorted(known)}.")
    return cls(**values)


def check_positive_int(config: Any, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r}: expected a positive integer.")


def check_number(config: Any, name: str, low=None, high=None, low_inclusive=True) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r}: expected a finite number.")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = f"> {low}" if not low_inclusive else f">= {low}"
        raise ConfigError(f"{name}={value!r}: expected a number {bound}.")
    if high is not None and value > high:
        raise ConfigError(f"{name}={value!r}: expected a number <= {high}.")
