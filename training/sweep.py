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
#: The model artifact's metadata keys that hold them, and the trial's model family.
HYPERPARAMETERS_KEY = "hyperparameters"
FAMILY_KEY = "model_family"


def recorded_hyperparameters(config) -> dict[str, Any]:
    """What a trained model records of its config (`TrainConfig`, `BoostingConfig`) for `select_best` to read back."""
    return {key: getattr(config, key) for key in (SWEPT if hasattr(config, "hidden_sizes") else SWEPT_BOOSTING)}


def select_best(trials: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The model family and hyperparameters of the trial with the best `metric` (from each trial
    model's metadata), whichever family each trial trained: the families are scored on the same
    validation split, so their metrics compare.

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
    family = best.get(FAMILY_KEY, "network")  # models from before the trees carry no family
    chosen = {key: recorded[key] for key in (SWEPT_BOOSTING if family == "xgboost" else SWEPT) if key in recorded}
    if "hidden_sizes" in chosen:  # KFP carries numbers in lists as floats
        chosen["hidden_sizes"] = [int(h) for h in chosen["hidden_sizes"]]
    for key in ("max_leaves", "max_depth"):  # and numbers in metadata as floats
        if key in chosen:
            chosen[key] = int(chosen[key])
    return {**chosen, "model_family": family, "metric": float(best[metric])}
