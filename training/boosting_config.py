"""The gradient-boosted trees' configuration: one validated dataclass, serialised as JSON for the workers."""

from __future__ import annotations

import dataclasses
import json

from mlworkloads.training.config import TrackedConfig, check_number, check_positive_int, config_from_json
from mlworkloads.training.errors import ConfigError

#: How the preprocessor's category indices reach the trees (see `BoostingConfig`).
CATEGORICAL_ENCODINGS = ("ordinal", "native")
GROW_POLICIES = ("lossguide", "depthwise")


@dataclasses.dataclass(kw_only=True)
class BoostingConfig(TrackedConfig):
    """Everything one XGBoost training run needs; the defaults are what the flights bench measures.

    Attributes:
        train_uri: Preprocessed train features (Parquet, as written by `fit_preprocessor`).
        validation_uri: Preprocessed validation features (early stopping, the reported metrics).
        preprocessor_uri: The fitted preprocessor JSON.
        output_uri: Directory the exported model is written to (local path or fsspec URI).
        checkpoint_uri: Directory of the resumable checkpoint; empty means `<output_uri>-checkpoints`.
        num_boost_round: Maximum boosting rounds (trees per output).
        learning_rate: Shrinkage of each tree (XGBoost's `eta`).
        max_leaves: Leaves per tree (with `grow_policy="lossguide"`); 0 for no limit.
        max_depth: Depth limit per tree; 0 for none (the default with `lossguide`).
        grow_policy: "lossguide" (best leaf first, as LightGBM) or "depthwise".
        min_child_weight: Minimum hessian sum in a leaf.
        subsample: Fraction of rows sampled per tree.
        colsample_bytree: Fraction of columns sampled per tree.
        reg_lambda: L2 regularisation of leaf weights.
        reg_alpha: L1 regularisation of leaf weights.
        max_bin: Histogram bins per feature.
        categorical_encoding: "ordinal" splits on the preprocessor's category index (ordered by
            frequency: a split groups frequent against rare values); "native" uses XGBoost's
            categorical splits (partitions of the categories). On flights "ordinal" scores
            higher (bench/README.md); "native" suits categories whose frequency says nothing.
        early_stopping_rounds: Stop after this many rounds without a better validation metric; 0 never.
        checkpoint_interval: Rounds between checkpoints (rank 0 writes them).
        seed: Seeds row and column sampling: the same seed repeats a run.
        nthread: Threads per worker; 0 for every core the worker has.
        tracking_uri, tracking_experiment, tracking_run_key, tracking_optional: MLflow tracking,
            as for the network (`TrainConfig`): rank 0 logs the parameters, the validation metric
            every round and the history into the pipeline run's MLflow run.
    """

    train_uri: str
    validation_uri: str
    preprocessor_uri: str
    output_uri: str
    checkpoint_uri: str = ""
    num_boost_round: int = 1000
    learning_rate: float = 0.1
    max_leaves: int = 63
    max_depth: int = 0
    grow_policy: str = "lossguide"
    min_child_weight: float = 1.0
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    reg_lambda: float = 1.0
    reg_alpha: float = 0.0
    max_bin: int = 256
    categorical_encoding: str = "ordinal"
    early_stopping_rounds: int = 30
    checkpoint_interval: int = 50
    seed: int = 0
    nthread: int = 0

    def __post_init__(self):
        for name in ("train_uri", "validation_uri", "preprocessor_uri", "output_uri"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is empty: the trainer needs it.")
        for name in ("num_boost_round", "checkpoint_interval"):
            check_positive_int(self, name)
        for name in ("max_leaves", "max_depth", "early_stopping_rounds", "nthread", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r}: expected 0 or a positive integer.")
        if self.max_bin < 2:
            raise ConfigError(f"max_bin={self.max_bin!r}: expected at least 2 bins.")
        check_number(self, "learning_rate", low=0, high=1, low_inclusive=False)
        for name in ("subsample", "colsample_bytree"):
            check_number(self, name, low=0, high=1, low_inclusive=False)
        for name in ("min_child_weight", "reg_lambda", "reg_alpha"):
            check_number(self, name, low=0)
        if self.grow_policy not in GROW_POLICIES:
            raise ConfigError(f"grow_policy={self.grow_policy!r}: expected one of {list(GROW_POLICIES)}.")
        if self.grow_policy == "depthwise" and not self.max_depth:
            raise ConfigError("grow_policy='depthwise' needs max_depth > 0: a depth-wise tree must stop somewhere.")
        if self.categorical_encoding not in CATEGORICAL_ENCODINGS:
            raise ConfigError(
                f"categorical_encoding={self.categorical_encoding!r}: expected one of {list(CATEGORICAL_ENCODINGS)}."
            )
        if not self.checkpoint_uri:
            # Beside the model directory, not inside it: the model directory holds only the model.
            self.checkpoint_uri = self.output_uri.rstrip("/") + "-checkpoints"

    def booster_params(self, task: str, num_class: int) -> dict:
        """XGBoost's training parameters for `task` (the objective and metric follow from it)."""
        objective, metric = {
            "binary": ("binary:logistic", "auc"),
            "multiclass": ("multi:softprob", "mlogloss"),
            "regression": ("reg:squarederror", "rmse"),
        }[task]
        params = {
            "objective": objective,
            "eval_metric": metric,
            "tree_method": "hist",
            "eta": self.learning_rate,
            "max_leaves": self.max_leaves,
            "max_depth": self.max_depth,
            "grow_policy": self.grow_policy,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "alpha": self.reg_alpha,
            "max_bin": self.max_bin,
            "seed": self.seed,
        }
        if task == "multiclass":
            params["num_class"] = num_class
        if self.nthread:
            params["nthread"] = self.nthread
        return params

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BoostingConfig:
        return config_from_json(cls, text, "boosting")
