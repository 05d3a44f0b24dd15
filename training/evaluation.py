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

from mlworkloads.data import metrics as quality
from mlworkloads.data.errors import DataError
from mlworkloads.training.export import LoadedModel

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


def evaluate(
    challenger: LoadedModel,
    test: pa.Table,
    thresholds: dict[str, str] | None = None,
    champion: LoadedModel | None = None,
    min_improvement: float = 0.0,
    primary_metric: str = "",
) -> Evaluation:
    """Scores the challenger, checks the thresholds and, given a champion, that it beats it.

    Args:
        challenger: The model just trained.
        test: The raw test split (features and label).
        thresholds: Metric name -> comparison, e.g. {"roc_auc": ">=0.70", "log_loss": "<=0.6"}.
        champion: The currently deployed model, scored on the same rows.
        min_improvement: How much the challenger must beat the champion by on `primary_metric`.
        primary_metric: Metric for the champion comparison; empty for the task's default.
    """
    rules = parse_thresholds(thresholds or {})
    labels, scores = score(challenger, test)
    task = challenger.task
    result = quality.compute(task, labels, scores)
    reasons, passed = [], True
    for name, (op, bound) in rules.items():
        if name not in result:
            raise DataError(f"thresholds names metric {name!r}, which a {task} model does not have: {sorted(result)}.")
        ok = _OPERATORS[op](result[name], bound)
        passed &= ok
        reasons.append(f"{name} = {result[name]:.4f} {'meets' if ok else 'fails'} {op}{bound:g}")
    champion_result = None
    if champion is not None:
        if champion.task != task or champion.preprocessor.classes != challenger.preprocessor.classes:
            raise DataError("the champion model predicts a different task or classes; it cannot be compared.")
        champion_labels, champion_scores = score(champion, test)
        champion_result = quality.compute(task, champion_labels, champion_scores)
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
        predictions=_predictions(challenger, scores),
        passed=bool(passed),
        reasons=reasons,
        champion_metrics=champion_result,
    )
    if task != "regression":
        predicted = scores.argmax(axis=1)
        evaluation.classes = [str(c) for c in challenger.preprocessor.classes]
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


# The predictions table (the `predictions` artifact), written here and read by `expected_scores`:
# a regression's `prediction`, or a classifier's `predicted_class` and one `probability_<class>`
# column per class, in the preprocessor's class order.
PREDICTION_COLUMN = "prediction"
PREDICTED_CLASS_COLUMN = "predicted_class"


def probability_column(label) -> str:
    return f"probability_{label}"


def _predictions(model: LoadedModel, scores: np.ndarray) -> pa.Table:
    """Test-set predictions: the deploy smoke test sends the same rows and expects these."""
    if model.task == "regression":
        return pa.table({PREDICTION_COLUMN: scores.astype(np.float64)})
    columns = {PREDICTED_CLASS_COLUMN: [str(model.preprocessor.classes[i]) for i in scores.argmax(axis=1)]}
    for index, name in enumerate(model.preprocessor.classes):
        columns[probability_column(name)] = scores[:, index].astype(np.float64)
    return pa.table(columns)


def expected_scores(predictions: pa.Table, classes: list | None, rows: int) -> np.ndarray:
    """The first `rows` offline scores of a predictions table: values, or (rows, classes) probabilities."""
    if classes is None:
        return predictions[PREDICTION_COLUMN].to_numpy()[:rows]
    return np.column_stack([predictions[probability_column(c)].to_numpy()[:rows] for c in classes])


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
