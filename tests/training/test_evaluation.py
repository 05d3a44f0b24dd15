"""The evaluation gate: thresholds, the champion comparison, and the metrics it reports."""

import pyarrow.parquet as pq
import pytest

from mlworkloads.data.errors import DataError
from mlworkloads.training.evaluation import evaluate, evaluate_predictions, parse_thresholds, report_html
from mlworkloads.training.export import load
from mlworkloads.training.predictions import read_predictions


@pytest.fixture(scope="module")
def evaluation_split(sample_features):
    return pq.read_table(sample_features["test_raw"])


@pytest.fixture(scope="module")
def better(sample_model):  # 2 epochs, [64, 32]
    return load(sample_model)


@pytest.fixture(scope="module")
def worse(other_model):  # 1 epoch, [16]
    return load(other_model)


def test_the_better_model_really_is_better(better, worse, evaluation_split):
    assert evaluate(better, evaluation_split).metrics["roc_auc"] > evaluate(worse, evaluation_split).metrics["roc_auc"]


@pytest.mark.parametrize(
    ("thresholds", "use_champion", "min_improvement", "passed", "reason"),
    [
        ({"roc_auc": ">=0.5"}, False, 0.0, True, "roc_auc = "),
        ({"roc_auc": ">=0.99"}, False, 0.0, False, "fails >=0.99"),
        ({"log_loss": "<=5"}, False, 0.0, True, "meets <=5"),
        ({"roc_auc": ">=0.5", "log_loss": "<=0.01"}, False, 0.0, False, "log_loss"),
        ({}, False, 0.0, True, "passed by default"),
        ({}, "worse-is-champion", 0.0, True, "beats it"),
        ({}, "worse-is-champion", 0.5, False, "does not beat it by the required 0.5"),
        ({}, "better-is-champion", 0.0, False, "does not beat"),  # challenger worse than champion: not deployed
        ({"roc_auc": ">=0.5"}, "better-is-champion", 0.0, False, "does not beat"),
    ],
)
def test_the_gate(better, worse, evaluation_split, thresholds, use_champion, min_improvement, passed, reason):
    challenger, champion = better, None
    if use_champion == "worse-is-champion":
        champion = worse
    elif use_champion == "better-is-champion":
        challenger, champion = worse, better
    result = evaluate(challenger, evaluation_split, thresholds, champion=champion, min_improvement=min_improvement)
    assert result.passed is passed
    assert any(reason in r for r in result.reasons), result.reasons


def test_evaluation_reports_the_confusion_matrix_roc_curve_and_predictions(better, evaluation_split):
    result = evaluate(better, evaluation_split)
    assert sum(map(sum, result.confusion)) == evaluation_split.num_rows
    assert result.classes == ["False", "True"]
    assert result.roc["fpr"][0] == 0.0 and result.roc["tpr"][-1] == 1.0
    assert result.predictions.column_names == ["label", "predicted_class", "probability_False", "probability_True"]
    assert "Confusion matrix" in report_html(result)


def test_the_predictions_table_of_the_built_in_model_scores_the_same_as_any_models(better, worse, evaluation_split):
    """evaluate_model's table, read as evaluate_predictions reads a team's: the same metrics and verdict."""
    model = evaluate(better, evaluation_split, {"roc_auc": ">=0.6"}, champion=worse)
    champion = evaluate(worse, evaluation_split)
    table = evaluate_predictions(
        read_predictions(model.predictions),
        {"roc_auc": ">=0.6"},
        champion=read_predictions(champion.predictions),
    )
    assert table.metrics == pytest.approx(model.metrics) and table.passed is model.passed
    assert table.champion_metrics == pytest.approx(model.champion_metrics)
    assert table.confusion == model.confusion and table.classes == model.classes


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [({"roc_auc": "high"}, "thresholds['roc_auc'] = 'high'"), ({"roc_auc": "=>0.7"}, "expected a comparison")],
)
def test_bad_thresholds_are_refused_naming_them(thresholds, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_thresholds(thresholds)


def test_a_threshold_on_a_metric_the_task_lacks_is_refused(better, evaluation_split):
    with pytest.raises(DataError, match="thresholds names metric 'rmse'"):
        evaluate(better, evaluation_split, {"rmse": "<=1"})
