"""Request-sized batches of trees go through ONNX Runtime only where it scores as XGBoost does."""

import logging

import numpy as np
import pytest
import xgboost as xgb

from mlworkloads.training.boosting_model import BoosterScorer, probabilities
from mlworkloads.training.onnx_trees import MAX_ROWS, OnnxTrees

TASKS = {"binary:logistic": "binary", "multi:softprob": "multiclass", "reg:squarederror": "regression"}


def _booster(objective: str, rounds: int = 40, **params):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    x[:, 5] = rng.integers(0, 8, size=len(x))  # a category index, split on as a number
    x[rng.random(x.shape) < 0.05] = np.nan  # XGBoost learns a default direction per split
    signal = np.nan_to_num(x[:, 0]) * 2 - np.nan_to_num(x[:, 1]) + np.sin(np.nan_to_num(x[:, 2]) * 3) + (x[:, 5] == 3)
    y = {
        "binary:logistic": (signal > 0.5).astype(int),
        "multi:softprob": np.digitize(signal, [-1, 0.5, 2]),
        "reg:squarederror": signal + rng.normal(scale=0.1, size=len(x)),
        "reg:logistic": 1 / (1 + np.exp(-signal)),
    }[objective]
    settings = {"objective": objective, "tree_method": "hist", "max_leaves": 63, "grow_policy": "lossguide"}
    if objective == "multi:softprob":
        settings["num_class"] = 4
    booster = xgb.train({**settings, **params}, xgb.DMatrix(x, y), rounds)
    rows = rng.normal(size=(300, 6)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.1] = np.nan
    return booster, rows


def _loaded(booster: xgb.Booster, task: str, rounds: int) -> BoosterScorer:
    """The scorer as `export.load` builds it from the model directory's bytes."""
    config = {"best_iteration": rounds - 1, "feature_spec": {"task": task, "numeric_width": 5, "cardinalities": [8]}}
    return BoosterScorer.from_bytes(bytes(booster.save_raw("ubj")), config)


def _score(scorer: BoosterScorer, rows: np.ndarray) -> np.ndarray:
    return scorer(rows[:, :5], rows[:, 5:])


@pytest.mark.parametrize("objective", list(TASKS))
def test_one_row_and_batches_score_as_xgboost_for_every_objective(objective):
    booster, rows = _booster(objective)
    scorer = _loaded(booster, TASKS[objective], booster.num_boosted_rounds())
    expected = probabilities(TASKS[objective], booster.inplace_predict(rows))
    np.testing.assert_allclose(_score(scorer, rows), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(_score(scorer, rows[7:8]), expected[7:8], atol=1e-5, rtol=1e-5)
    assert scorer.runtime._run is not None  # ONNX Runtime answered, not XGBoost


def test_only_the_best_rounds_are_scored():
    booster, rows = _booster("binary:logistic")
    scorer = _loaded(booster, "binary", 10)
    expected = probabilities("binary", booster.inplace_predict(rows, iteration_range=(0, 10)))
    np.testing.assert_allclose(_score(scorer, rows), expected, atol=1e-5, rtol=1e-5)
    assert not np.allclose(expected, probabilities("binary", booster.inplace_predict(rows)), atol=1e-3)


def test_a_batch_larger_than_a_request_is_left_to_xgboost():
    booster, rows = _booster("binary:logistic", rounds=5)
    scorer = _loaded(booster, "binary", 5)
    many = np.resize(rows, (MAX_ROWS + 1, rows.shape[1]))
    np.testing.assert_allclose(_score(scorer, many), probabilities("binary", booster.inplace_predict(many)), atol=1e-6)
    assert not scorer.runtime._built  # never converted


def test_categorical_splits_are_left_to_xgboost(caplog):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 8, size=(2000, 2)).astype(np.float32)
    y = (x[:, 0] % 3 == 0).astype(int)
    matrix = xgb.DMatrix(x, y, feature_types=["c", "q"], enable_categorical=True)
    booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_cat_to_onehot": 1}, matrix, 5)
    config = {"feature_spec": {"task": "binary", "numeric_width": 1, "cardinalities": [8]}}
    scorer = BoosterScorer.from_bytes(bytes(booster.save_raw("ubj")), config)
    with caplog.at_level(logging.INFO, logger="mlworkloads.training.onnx_trees"):
        scores = scorer(x[:50, :1], x[:50, 1:])
    assert "cannot convert" in caplog.text
    assert scorer.runtime._run is None
    np.testing.assert_allclose(scores, probabilities("binary", booster.inplace_predict(x[:50])), atol=1e-6)


def test_a_conversion_that_scores_differently_is_not_used(caplog):
    # The converter takes reg:logistic's trees but not its logistic link: its output is the raw
    # margin sum, which the probe rows catch.
    booster, rows = _booster("reg:logistic", rounds=10)
    runtime = OnnxTrees(booster, 10, 6, "regression", lambda m: booster.inplace_predict(m, iteration_range=(0, 10)))
    with caplog.at_level(logging.WARNING, logger="mlworkloads.training.onnx_trees"):
        assert runtime(rows) is None
    assert "disagrees on probe rows" in caplog.text
