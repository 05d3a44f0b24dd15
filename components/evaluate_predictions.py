"""Component: gate any model on its held-out predictions: metrics, thresholds, and the champion to beat."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Input, Metrics, Output

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_predictions(
    predictions: Input[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    predictions_file: str = "",
    label_column: str = "label",
    task: str = "auto",
    thresholds: Optional[dict] = None,
    champion_predictions: Optional[Input[Artifact]] = None,
    min_improvement: float = 0.0,
    primary_metric: str = "",
) -> bool:
    """Scores a predictions table that any model produced and decides whether it may be deployed.

    The table (Parquet or CSV) holds the true label and, per row, a classifier's
    `predicted_class` and one `probability_<class>` column per class, or a binary classifier's
    `score` (the positive class's probability; the label's second value in sorted order is the
    positive class), or a regression's `prediction`.

    Args:
        predictions: The table, or a directory holding `predictions.parquet` or
            `predictions.csv` (e.g. the model directory `launch_training_job` returns).
        predictions_file: The table's file name inside a directory artifact, when not one of those.
        label_column: The column with the true label.
        task: "auto" (from the columns), "binary", "multiclass" or "regression".
        thresholds: Metric to comparison, e.g. {"accuracy": ">=0.9", "log_loss": "<=0.6"}.
        champion_predictions: The currently deployed model's predictions for the same rows, in
            the same order: the challenger must beat it on the primary metric.
        min_improvement: How much the challenger must beat the champion by.
        primary_metric: Metric of the champion comparison; empty for the task's default
            (roc_auc for binary, accuracy for multiclass, rmse for regression).

    Returns:
        metrics: Accuracy, precision, recall, F1, ROC AUC and log loss (classification) or
            RMSE, MAE and R² (regression).
        classification: Confusion matrix (and the ROC curve of a binary classifier), drawn by the KFP UI.
        report: HTML report with the verdict and the reasons; its metadata holds `passed` and `reasons`.
        Output: passed: True when every threshold holds and the champion (if any) is beaten.
            Use it as `dsl.If(evaluate.outputs["Output"] == True)`.
    """
    from mlworkloads.training.evaluation import evaluate_predictions_step, log_to_kfp

    result = evaluate_predictions_step(
        predictions_path=predictions.path,
        report_path=report.path,
        predictions_file=predictions_file,
        label_column=label_column,
        task=task,
        thresholds=thresholds or {},
        champion_path=champion_predictions.path if champion_predictions is not None else "",
        min_improvement=min_improvement,
        primary_metric=primary_metric,
    )
    log_to_kfp(result, metrics, classification)
    report.metadata.update({"passed": result.passed, "reasons": result.reasons, "task": result.task})
    return result.passed


with_step_resources(evaluate_predictions, "table")
