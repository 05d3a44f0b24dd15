"""Scoring the test split and the evaluation gate (thresholds, and beating the champion)."""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import operator
import re

import numpy as np
import pyarrow as pa
from sklearn import metrics as skm

from mlworkloads.data.errors import DataError
from mlworkloads.training import quality
from mlworkloads.training.export import LoadedModel
from mlworkloads.training.predictions import Scored, predictions_table

_COMPARISON = re.compile(r"^\s*(>=|<=|>|<|==)\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")
_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
#: Metrics where a lower value is better (for the champion comparison).
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}

log = logging.getLogger(__name__)


def parse_thresholds(thresholds: dict[str, str]) -> dict[str, tuple[str, float]]:
    """`{"roc_auc": ">=0.70"}` -> `{"roc_auc": (">=", 0.70)}`, refusing anything else by name."""
    parsed = {}
    for name, rule in (thresholds or {}).items():
        match = _COMPARISON.match(str(rule))
        if not match:
            raise DataError(f"thresholds[{name!r}] = {rule!r}: expected a comparison such as '>=0.70' or '<=0.6'.")
        parsed[name] = (match[1], float(match[2]))
    return parsed


@dataclasses.dataclass
class Evaluation:
    """The challenger's scores on the test split and the gate's verdict."""

    task: str
    metrics: dict[str, float]
    predictions: pa.Table
    passed: bool
    reasons: list[str]
    confusion: list[list[int]] | None = None
    classes: list[str] | None = None
    roc: dict[str, list[float]] | None = None
    champion_metrics: dict[str, float] | None = None


def score(model: LoadedModel, test: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(encoded labels, scores) of `model` on the raw test split."""
    preprocessor = model.preprocessor
    if preprocessor.label not in test.column_names:
        raise DataError(
            f"the test split has no label column {preprocessor.label!r}; its columns are {test.column_names}."
        )
    labels = preprocessor.encode_labels(test[preprocessor.label])
    return labels, model.predict_columns(test)


def judge(
    task: str,
    labels: np.ndarray,
    scores: np.ndarray,
    classes: list[str] | None,
    thresholds: dict[str, str] | None = None,
    champion_scores: np.ndarray | None = None,
    min_improvement: float = 0.0,
    primary_metric: str = "",
) -> Evaluation:
    """The gate on any model's scores: metrics, thresholds and, given the champion's scores on the
    same rows, whether the challenger beats it on `primary_metric` by `min_improvement`.

    Args:
        task: "binary", "multiclass" or "regression".
        labels: Class indices (in `classes` order), or target values for regression.
        scores: Probabilities (n, classes), or predicted values (n,).
        classes: The class names; None for regression.
        thresholds: Metric name -> comparison, e.g. {"roc_auc": ">=0.70", "log_loss": "<=0.6"}.
    """
    rules = parse_thresholds(thresholds or {})
    result = quality.compute(task, labels, scores)
    reasons, passed = [], True
    for name, (op, bound) in rules.items():
        if name not in result:
            raise DataError(f"thresholds names metric {name!r}, which a {task} model does not have: {sorted(result)}.")
        ok = _OPERATORS[op](result[name], bound)
        passed &= ok
        reasons.append(f"{name} = {result[name]:.4f} {'meets' if ok else 'fails'} {op}{bound:g}")
    champion_result = None
    if champion_scores is not None:
        champion_result = quality.compute(task, labels, champion_scores)
        metric = primary_metric or quality.PRIMARY_METRIC[task][0]
        if metric not in result:
            raise DataError(f"primary_metric {metric!r} is not a metric of a {task} model: {sorted(result)}.")
        lower = metric in LOWER_IS_BETTER
        gain = (champion_result[metric] - result[metric]) if lower else (result[metric] - champion_result[metric])
        ok = gain >= min_improvement
        passed &= ok
        reasons.append(
            f"challenger {metric} = {result[metric]:.4f} vs champion {champion_result[metric]:.4f}: "
            f"{'beats' if ok else 'does not beat'} it by the required {min_improvement:g} (gain {gain:+.4f})"
        )
    if not reasons:
        reasons.append("no thresholds and no champion: passed by default")
    log.info("gate %s: %s", "passed" if passed else "failed", "; ".join(reasons))
    evaluation = Evaluation(
        task=task,
        metrics=result,
        predictions=predictions_table(task, classes, scores),
        passed=bool(passed),
        reasons=reasons,
        champion_metrics=champion_result,
    )
    if task != "regression":
        predicted = scores.argmax(axis=1)
        evaluation.classes = [str(c) for c in classes]
        evaluation.confusion = skm.confusion_matrix(labels, predicted, labels=range(len(evaluation.classes))).tolist()
        if task == "binary":
            fpr, tpr, thresholds_ = skm.roc_curve(labels, scores[:, 1])
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
            evaluation.roc = {
                "fpr": fpr[keep].tolist(),
                "tpr": tpr[keep].tolist(),
                "thresholds": np.minimum(thresholds_[keep], 1.0).tolist(),
            }
    return evaluation


def evaluate(
    challenger: LoadedModel,
    test: pa.Table,
    thresholds: dict[str, str] | None = None,
    champion: LoadedModel | None = None,
    min_improvement: float = 0.0,
    primary_metric: str = "",
) -> Evaluation:
    """Scores the built-in challenger on the raw test split and `judge`s it (against the champion
    model scored on the same rows, when given).

    Args:
        challenger: The model just trained.
        test: The raw test split (features and label).
        champion: The currently deployed model.
        Others: as `judge`.
    """
    labels, scores = score(challenger, test)
    champion_scores = None
    if champion is not None:
        if champion.task != challenger.task or champion.preprocessor.classes != challenger.preprocessor.classes:
            raise DataError("the champion model predicts a different task or classes; it cannot be compared.")
        champion_scores = score(champion, test)[1]
    classes = None if challenger.task == "regression" else list(challenger.preprocessor.classes)
    evaluation = judge(
        challenger.task, labels, scores, classes, thresholds, champion_scores, min_improvement, primary_metric
    )
    # The smoke test sends these rows and expects these scores; the label makes the table
    # one any model's evaluation reads (evaluate_predictions).
    evaluation.predictions = predictions_table(
        challenger.task,
        classes,
        scores,
        labels=pa.array([str(v) for v in test[challenger.preprocessor.label].to_pylist()]),
    )
    return evaluation


def evaluate_predictions(
    challenger: Scored,
    thresholds: dict[str, str] | None = None,
    champion: Scored | None = None,
    min_improvement: float = 0.0,
    primary_metric: str = "",
) -> Evaluation:
    """`judge`s a predictions table of any model (`predictions.read_predictions`), against the
    champion's predictions for the same rows when given."""
    champion_scores = None
    if champion is not None:
        if (champion.task, champion.classes) != (challenger.task, challenger.classes):
            raise DataError(
                f"the champion's predictions are for a {champion.task} task with classes {champion.classes}, the "
                f"challenger's for a {challenger.task} task with classes {challenger.classes}: they cannot be compared."
            )
        if len(champion.labels) != len(challenger.labels) or not np.array_equal(champion.labels, challenger.labels):
            raise DataError(
                "the champion's predictions are not for the same rows as the challenger's (their labels differ): "
                "score both models on the same held-out rows, in the same order."
            )
        champion_scores = champion.scores
    return judge(
        challenger.task,
        challenger.labels,
        challenger.scores,
        challenger.classes,
        thresholds,
        champion_scores,
        min_improvement,
        primary_metric,
    )


def log_to_kfp(evaluation: Evaluation, metrics, classification) -> None:
    """An evaluation's metrics, confusion matrix and ROC curve into a component's `Metrics` and
    `ClassificationMetrics` outputs (any objects with their `log_*` methods)."""
    for name, value in evaluation.metrics.items():
        metrics.log_metric(name, round(value, 6))
    if evaluation.confusion:
        classification.log_confusion_matrix(evaluation.classes, evaluation.confusion)
    if evaluation.roc:
        classification.log_roc_curve(evaluation.roc["fpr"], evaluation.roc["tpr"], evaluation.roc["thresholds"])


def report_html(evaluation: Evaluation) -> str:
    """A small HTML report: verdict, reasons, metrics (and the champion's), confusion matrix."""
    verdict = "PASSED" if evaluation.passed else "FAILED"
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td><td>{'' if evaluation.champion_metrics is None else format(evaluation.champion_metrics.get(k, float('nan')), '.4f')}</td></tr>"  # noqa: E501
        for k, v in sorted(evaluation.metrics.items())
    )
    parts = [
        f"<html><body><h1>Evaluation: {verdict}</h1><ul>",
        *(f"<li>{html.escape(r)}</li>" for r in evaluation.reasons),
        "</ul><table border='1' cellpadding='4'><tr><th>metric</th><th>challenger</th><th>champion</th></tr>",
        rows,
        "</table>",
    ]
    if evaluation.confusion:
        header = "".join(f"<th>predicted {html.escape(c)}</th>" for c in evaluation.classes)
        body = "".join(
            f"<tr><th>actual {html.escape(c)}</th>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
            for c, row in zip(evaluation.classes, evaluation.confusion, strict=True)
        )
        parts.append(
            f"<h2>Confusion matrix</h2><table border='1' cellpadding='4'><tr><th></th>{header}</tr>{body}</table>"
        )
    parts.append(f"<p>{evaluation.predictions.num_rows:,} test rows scored.</p></body></html>\n")
    return "".join(parts)


def summary_json(evaluation: Evaluation) -> str:
    return json.dumps(
        {
            "passed": evaluation.passed,
            "reasons": evaluation.reasons,
            "metrics": evaluation.metrics,
            "champion_metrics": evaluation.champion_metrics,
        },
        indent=2,
        sort_keys=True,
    )


def evaluate_predictions_step(
    *,
    predictions_path: str,
    report_path: str,
    predictions_file: str = "",
    label_column: str = "label",
    task: str = "auto",
    thresholds: dict[str, str] | None = None,
    champion_path: str = "",
    min_improvement: float = 0.0,
    primary_metric: str = "",
) -> Evaluation:
    """What the `evaluate_predictions` component does: read any model's predictions table (and
    the champion's, for the same rows), gate it, and write the report."""
    from mlworkloads.data.steps import write_outputs
    from mlworkloads.training.predictions import read_predictions, read_table

    table, source = read_table(predictions_path, predictions_file)
    challenger = read_predictions(table, label_column, task, source=source)
    champion = None
    if champion_path:
        champion_table, champion_source = read_table(champion_path, predictions_file)
        champion = read_predictions(champion_table, label_column, challenger.task, source=champion_source)
    result = evaluate_predictions(challenger, thresholds, champion, min_improvement, primary_metric)
    result.predictions = table
    write_outputs(texts={report_path: report_html(result)})
    return result
