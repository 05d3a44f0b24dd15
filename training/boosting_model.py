"""The boosted trees' view of the preprocessor's features, and scoring with a trained booster.

Training and serving share the preprocessor's `transform` (as the network does): the trees see
its numeric block (standardised values and missing-value flags) and, after it, one column per
categorical feature holding the category's index, as a float. `feature_types` tells XGBoost
which columns are categories ("c", `categorical_encoding="native"`) or ordered numbers ("q").
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xgboost as xgb

from mlworkloads.training.onnx_trees import MAX_ROWS, OnnxTrees

#: The booster's parameters at serving time: request-sized batches are fastest on one thread
#: (the predictor caps BLAS and torch threads for the same reason).
SERVING_PARAMS = {"nthread": 1}


def feature_matrix(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """The preprocessor's blocks side by side, float32 (n, numeric width + categorical columns)."""
    matrix = np.empty((numeric.shape[0], numeric.shape[1] + categorical.shape[1]), dtype=np.float32)
    matrix[:, : numeric.shape[1]] = numeric
    matrix[:, numeric.shape[1] :] = categorical
    return matrix


def feature_types(spec: dict[str, Any], categorical_encoding: str) -> list[str]:
    """XGBoost's type per column of `feature_matrix` for the model's feature spec."""
    category = "c" if categorical_encoding == "native" else "q"
    return ["q"] * spec["numeric_width"] + [category] * len(spec["cardinalities"])


def probabilities(task: str, predictions: np.ndarray) -> np.ndarray:
    """The booster's output as the network's: (n, 2) for binary, (n, classes), or values (n,)."""
    if task == "binary":
        positive = predictions.astype(np.float32, copy=False)
        return np.stack([1 - positive, positive], axis=1)
    return predictions.astype(np.float32, copy=False)


@dataclasses.dataclass
class BoosterScorer:
    """Scores feature blocks with a booster, up to its best round (`export.Scorer`).

    A loaded model (`from_bytes`) scores request-sized batches through ONNX Runtime
    (`onnx_trees.OnnxTrees`) when the trees convert and score alike; everything else, and
    every batch of the training run's own scorer, through XGBoost's predictor.
    """

    booster: xgb.Booster
    task: str
    rounds: int
    runtime: OnnxTrees | None = None

    @classmethod
    def from_bytes(cls, payload: bytes, config: dict[str, Any]) -> BoosterScorer:
        booster = xgb.Booster(params=SERVING_PARAMS, model_file=bytearray(payload))
        rounds = int(config.get("best_iteration", booster.num_boosted_rounds() - 1)) + 1
        spec = config["feature_spec"]
        scorer = cls(booster=booster, task=spec["task"], rounds=rounds)
        width = spec["numeric_width"] + len(spec["cardinalities"])
        scorer.runtime = OnnxTrees(booster, rounds, width, spec["task"], scorer.with_xgboost)
        return scorer

    def __call__(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        matrix = feature_matrix(numeric, categorical)
        if self.runtime is not None and len(matrix) <= MAX_ROWS:
            scores = self.runtime(matrix)
            if scores is not None:
                return scores
        return self.with_xgboost(matrix)

    def with_xgboost(self, matrix: np.ndarray) -> np.ndarray:
        """The feature matrix scored by XGBoost's own predictor."""
        predictions = self.booster.inplace_predict(matrix, iteration_range=(0, self.rounds), validate_features=False)
        return probabilities(self.task, predictions)
