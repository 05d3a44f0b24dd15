"""Component: score the test split and gate the model on thresholds and the champion."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    test: Input[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    predictions: Output[Dataset],
    thresholds: Optional[dict] = None,
    champion: Optional[Input[Model]] = None,
    champion_uri: str = "",
    champion_service: str = "",
    champion_model: str = "",
    namespace: str = "",
    min_improvement: float = 0.0,
    primary_metric: str = "",
    tracking_uri: str = "",
    tracking_optional: bool = False,
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
) -> bool:
    """Scores the test split with the trained model and decides whether it may be deployed.

    Args:
        model: The trained model directory (from `train_pytorchjob`).
        test: The raw test split (from `split_dataset`), with the label.
        thresholds: Metric to comparison, e.g. {"roc_auc": ">=0.70", "log_loss": "<=0.6"}.
        champion: The currently deployed model's artifact, scored on the same test rows.
        champion_uri: Or the champion's model directory URI (s3://, gs://, a path).
        champion_service: Or the name of the live InferenceService whose recorded model is the champion.
        champion_model: Or a version in MLflow's model registry: "name@champion" (the alias
            `set_model_alias` moves on each deployment) or "name/3"; read from `tracking_uri`.
        namespace: Namespace of `champion_service`; empty for the step's own.
        min_improvement: How much the challenger must beat the champion by on the primary metric.
        primary_metric: Metric of the champion comparison; empty for the task's default
            (roc_auc for binary, accuracy for multiclass, rmse for regression).
        tracking_uri: MLflow tracking server to log the test metrics and the verdict into (the
            pipeline run's MLflow run, the trainer's); empty for `MLFLOW_TRACKING_URI`, and no
            tracking when that is unset too.
        tracking_optional: Go on without tracking when the server cannot be reached.
        run_id: The pipeline run id (filled in by KFP): the MLflow run's key.

    Returns:
        metrics: Accuracy, precision, recall, F1, ROC AUC and log loss (classification) or
            RMSE, MAE and R² (regression) on the test split.
        classification: Confusion matrix and ROC curve, drawn by the KFP UI.
        report: HTML report with the verdict, the reasons and the champion's metrics; its
            metadata holds `passed` and `reasons` (one line per check).
        predictions: The test-set predictions, which the deploy smoke test expects back.
        Output: passed: True when every threshold holds and the champion (if any) is beaten.
            Use it as `dsl.If(evaluate.outputs["Output"] == True)`.
    """
    from mlworkloads.serving.gate import gate_step
    from mlworkloads.training.evaluation import log_to_kfp
    from mlworkloads.training.tracking import TrackingSettings

    result = gate_step(
        model_path=model.path,
        test_path=test.path,
        report_path=report.path,
        predictions_path=predictions.path,
        thresholds=thresholds or {},
        champion_dir=champion.path if champion is not None else champion_uri,
        champion_service=champion_service,
        champion_model=champion_model,
        namespace=namespace,
        min_improvement=min_improvement,
        primary_metric=primary_metric,
        tracking_settings=TrackingSettings(tracking_uri, run_key=run_id, optional=tracking_optional),
    )
    log_to_kfp(result, metrics, classification)
    predictions.metadata["rows"] = result.predictions.num_rows
    report.metadata.update({"passed": result.passed, "reasons": result.reasons})
    # A single `Output`, not a NamedTuple: kfp.local resolves only a task's `Output` inside a
    # dsl.If condition, and the same YAML must run locally and in the cluster.
    return result.passed


with_step_resources(evaluate_model, "table")
