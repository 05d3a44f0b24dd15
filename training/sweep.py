"""Choosing the best trial of a hyperparameter sweep."""

from __future__ import annotations

from typing import Any

from mlworkloads.data.errors import DataError
from mlworkloads.training import evaluation

#: Validation metrics where a lower value is better: the losses and errors of the gate's metrics.
LOWER_IS_BETTER = {"validation_loss", *(f"validation_{name}" for name in evaluation.LOWER_IS_BETTER)}
#: The hyperparameters a trial records in its model's metadata, and the retrain takes.
SWEPT = ("hidden_sizes", "learning_rate", "dropout", "batch_size", "weight_decay")
#: The same for a boosted-trees trial.
SWEPT_BOOSTING = ("learning_rate", "max_leaves", "max_depth", "min_child_weight", "subsample", "colsample_bytree")
#: The model artifact's metadata key that holds them.
HYPERPARAMETERS_KEY = "hyperparameters"


def recorded_hyperparameters(config) -> dict[str, Any]:
    """What a trained model records of its config (`TrainConfig`, `BoostingConfig`) for `select_best` to read back."""
    return {key: getattr(config, key) for key in (SWEPT if hasattr(config, "hidden_sizes") else SWEPT_BOOSTING)}


def select_best(trials: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The hyperparameters of the trial with the best `metric` (from each trial model's metadata).

    Raises:
        DataError: no trials, or a trial without the metric (naming the ones it has).
    """
    if not trials:
        raise DataError("the sweep produced no trials to choose from.")
    for index, trial in enumerate(trials):
        if metric not in trial:
            raise DataError(
                f"trial {index} has no metric {metric!r}; it has {sorted(k for k in trial if 'validation' in k)}."
            )
    lower = metric in LOWER_IS_BETTER
    best = min(trials, key=lambda t: t[metric]) if lower else max(trials, key=lambda t: t[metric])
    recorded = best.get(HYPERPARAMETERS_KEY, {})
    chosen = {key: recorded[key] for key in SWEPT if key in recorded}
    if "hidden_sizes" in chosen:  # KFP carries numbers in lists as floats
        chosen["hidden_sizes"] = [int(h) for h in chosen["hidden_sizes"]]
    return {**chosen, "metric": float(best[metric])}
