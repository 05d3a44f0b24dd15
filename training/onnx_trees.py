"""Request-sized batches of a tree ensemble scored by ONNX Runtime's tree-ensemble kernel.

XGBoost's predictor costs ~150 us of fixed overhead per call and ~0.5 us per tree for one row:
~540 us for the flights model's 668 trees, more than the whole rest of a request. ONNX
Runtime's `TreeEnsembleClassifier`/`Regressor` scores the same row in ~15 us, and 200 rows in
2.0 ms against XGBoost's 2.6 ms, one thread each (bench/README.md). The booster is converted
with onnxmltools (the ONNX project's converter) the first time a request-sized batch is scored,
and the session is used only if it gives XGBoost's output on probe rows that take every split
both ways and miss values; a booster it cannot convert (categorical splits) or that it scores
differently stays with XGBoost, which also scores larger batches on all its threads.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

#: Batches up to this many rows go through ONNX Runtime (the predictor's largest batch);
#: larger ones (an evaluation's whole split) through XGBoost's multithreaded predictor.
MAX_ROWS = 4096
#: How close the two must agree: both sum float32 leaf values, in different orders.
TOLERANCE = 1e-4
PROBE_ROWS = 64

#: float32 matrix (n, features) -> the scorer's output for the task (`boosting_model.probabilities`).
TreeScores = Callable[[np.ndarray], np.ndarray]


class OnnxTrees:
    """A booster's first `rounds` rounds as an ONNX Runtime session, built on first use.

    `xgboost_scores` is the reference: XGBoost's own scoring of a float32 matrix, shaped as the
    scorer returns it. Calling the object returns None when the session cannot be used.
    """

    def __init__(self, booster, rounds: int, n_features: int, task: str, xgboost_scores: TreeScores):
        self._booster, self._rounds, self._n_features, self._task = booster, rounds, n_features, task
        self._xgboost_scores = xgboost_scores
        self._lock = threading.Lock()
        self._built = False
        self._run: TreeScores | None = None

    def __call__(self, matrix: np.ndarray) -> np.ndarray | None:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._run = self._build()
                    self._built = True
        return None if self._run is None else self._run(matrix)

    def _build(self) -> TreeScores | None:
        try:
            run, thresholds = _session(self._booster, self._rounds, self._n_features, self._task)
        except Exception as err:  # noqa: BLE001 - the converter raises many types for what it cannot convert
            log.info("tree scoring stays with XGBoost: onnxmltools cannot convert the booster (%s: %s)",
                     type(err).__name__, err)  # fmt: skip
            return None
        probes = _probe_rows(thresholds, self._n_features)
        expected, got = self._xgboost_scores(probes), run(probes)
        if got.shape != expected.shape or not np.allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE):
            difference = np.abs(got - expected).max() if got.shape == expected.shape else f"shape {got.shape}"
            log.warning("tree scoring stays with XGBoost: ONNX Runtime disagrees on probe rows (%s)", difference)
            return None
        return run


def _session(booster, rounds: int, n_features: int, task: str) -> tuple[TreeScores, list[np.ndarray]]:
    """(the session's scoring function, each feature's split thresholds)."""
    import onnxmltools
    import onnxruntime as ort
    from onnxmltools.convert.common.data_types import FloatTensorType

    trees = booster[:rounds]  # a copy: names and types cleared for the converter, not on the served booster
    trees.feature_names, trees.feature_types = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = onnxmltools.convert_xgboost(trees, initial_types=[("x", FloatTensorType([None, n_features]))])
    ensemble = next(node for node in model.graph.node if node.op_type.startswith("TreeEnsemble"))
    attributes = {a.name: a for a in ensemble.attribute}
    features, values = np.array(attributes["nodes_featureids"].ints), np.array(attributes["nodes_values"].floats)
    modes = [m.decode() for m in attributes["nodes_modes"].strings]
    branches = np.array([m != "LEAF" for m in modes])
    thresholds = [values[branches & (features == f)].astype(np.float32) for f in range(n_features)]

    options = ort.SessionOptions()
    # One thread: request-sized batches are fastest so and leave the other cores to the server.
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    output = "variable" if task == "regression" else "probabilities"
    if output not in {o.name for o in session.get_outputs()}:
        raise ValueError(f"the converted model has no {output!r} output")

    def run(matrix: np.ndarray) -> np.ndarray:
        (scores,) = session.run([output], {"x": matrix})
        return scores[:, 0] if task == "regression" else scores

    return run, thresholds


def _probe_rows(thresholds: list[np.ndarray], n_features: int) -> np.ndarray:
    """Rows whose values sit at, just below and beyond each feature's thresholds, a few missing."""
    rng = np.random.default_rng(0)
    probes = np.zeros((PROBE_ROWS, n_features), np.float32)
    for feature, cuts in enumerate(thresholds):
        if cuts.size:
            around = np.concatenate([cuts, np.nextafter(cuts, np.float32(-np.inf)), cuts + 1])
            probes[:, feature] = rng.choice(around, size=PROBE_ROWS)
    probes[rng.random(probes.shape) < 0.1] = np.nan
    return probes
