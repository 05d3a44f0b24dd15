"""The one-row tree scorer agrees with XGBoost's predictor for every objective, and steps aside when it cannot."""

import numpy as np
import pytest
import xgboost as xgb

from mlworkloads.training.tree_scorer import build


def _booster(objective: str, rounds: int = 40, **params):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    x[:, 5] = rng.integers(0, 8, size=len(x))  # a category index, split on as a number
    signal = x[:, 0] * 2 - x[:, 1] + np.sin(x[:, 2] * 3) + (x[:, 5] == 3)
    y = {
        "binary:logistic": (signal > 0.5).astype(int),
        "multi:softprob": np.digitize(signal, [-1, 0.5, 2]),
        "reg:squarederror": signal + rng.normal(scale=0.1, size=len(x)),
    }[objective]
    settings = {"objective": objective, "tree_method": "hist", "max_leaves": 63, "grow_policy": "lossguide"}
    if objective == "multi:softprob":
        settings["num_class"] = 4
    booster = xgb.train({**settings, **params}, xgb.DMatrix(x, y), rounds)
    return booster, rng.normal(size=(200, 6)).astype(np.float32)


@pytest.mark.parametrize("objective", ["binary:logistic", "multi:softprob", "reg:squarederror"])
def test_margins_equal_xgboosts_for_every_objective(objective):
    booster, rows = _booster(objective)
    scorer = build(booster, booster.num_boosted_rounds(), rows.shape[1])
    assert scorer is not None
    expected = np.asarray(booster.inplace_predict(rows, predict_type="margin")).reshape(len(rows), -1)
    ours = np.array([scorer.margins(row) for row in rows])
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def test_only_the_first_rounds_are_scored_when_asked():
    booster, rows = _booster("binary:logistic")
    scorer = build(booster, 10, rows.shape[1])
    expected = booster.inplace_predict(rows, iteration_range=(0, 10), predict_type="margin")
    np.testing.assert_allclose([scorer.margins(row)[0] for row in rows], expected, atol=1e-4, rtol=0)


def test_trees_over_64_leaves_are_left_to_xgboost():
    booster, rows = _booster("reg:squarederror", rounds=5, max_leaves=0, max_depth=10, grow_policy="depthwise")
    assert build(booster, 5, rows.shape[1]) is None


def test_categorical_splits_are_left_to_xgboost():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 8, size=(2000, 2)).astype(np.float32)
    y = (x[:, 0] % 3 == 0).astype(int)
    matrix = xgb.DMatrix(x, y, feature_types=["c", "q"], enable_categorical=True)
    booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_cat_to_onehot": 1}, matrix, 5)
    assert build(booster, 5, 2) is None
