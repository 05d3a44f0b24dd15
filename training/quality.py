"""Model quality metrics per task, shared by the trainer's validation and the evaluation gate."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

#: The metric each task is early-stopped and selected on, and whether higher is better.
PRIMARY_METRIC = {
    "binary": ("roc_auc", True),
    "multiclass": ("accuracy", True),
    "regression": ("rmse", False),
}


def compute(task: str, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Metrics for `task` from encoded labels and model scores.

    Args:
        task: "binary", "multiclass" or "regression".
        y_true: Class indices, or target values for regression.
        scores: Probabilities (n, classes), or predicted values (n,) for regression.
    """
    if task == "regression":
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, scores))),
            "mae": float(skm.mean_absolute_error(y_true, scores)),
            "r2": float(skm.r2_score(y_true, scores)),
        }
    predicted = scores.argmax(axis=1)
    labels = list(range(scores.shape[1]))
    average = "binary" if task == "binary" else "macro"
    result = {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "precision": float(skm.precision_score(y_true, predicted, average=average, zero_division=0)),
        "recall": float(skm.recall_score(y_true, predicted, average=average, zero_division=0)),
        "f1": float(skm.f1_score(y_true, predicted, average=average, zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, np.clip(scores, 1e-7, 1 - 1e-7), labels=labels)),
    }
    if len(np.unique(y_true)) > 1:
        if task == "binary":
            result["roc_auc"] = float(skm.roc_auc_score(y_true, scores[:, 1]))
        else:
            result["roc_auc"] = float(
                skm.roc_auc_score(y_true, scores, multi_class="ovr", average="macro", labels=labels)
            )
    return result


def is_better(task: str, value: float, best: float | None) -> bool:
    """Whether `value` of the task's primary metric improves on `best`."""
    if best is None:
        return True
    return value > best if PRIMARY_METRIC[task][1] else value < best
