"""The KServe predictor: raw features in, predictions out, with the training preprocessor."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from kserve import Model
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse
from prometheus_client import Counter
from threadpoolctl import threadpool_limits

from mlworkloads.data.errors import DataError, TensorError
from mlworkloads.data.preprocessor import SMALL_BATCH, Features
from mlworkloads.serving import payload as formats
from mlworkloads.serving.inferenceservice import MODEL_MOUNT
from mlworkloads.serving.metrics import TRAINING_CLASS_SHARE, BatchHistogram
from mlworkloads.training.export import LoadedModel, load

log = logging.getLogger(__name__)

# Where KServe's storage initializer puts the model, as the InferenceService manifest says.
DEFAULT_MODEL_DIR = MODEL_MOUNT
DEFAULT_MAX_BATCH = 4096
#: Batches up to this many rows are scored on the event loop: 256 rows take ~0.5 ms of
#: transform + forward on one core (bench/serving.py), less than the thread hop saves, and
#: health checks wait at most that long. Larger batches are scored in a thread.
INLINE_ROWS = 256

PREDICTIONS = Counter(
    "mlworkloads_predictions_total",
    "Predictions served, by predicted class.",
    ["model_name", "predicted_class"],
)
SCORES = BatchHistogram(
    "mlworkloads_prediction_score",
    "Score per prediction: the positive-class probability (binary), the top probability (multiclass) "
    "or the predicted value (regression).",
    ["model_name"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, float("inf")),
)


def limit_compute_threads(threads: int) -> None:
    """Caps torch's intra-op threads and numpy's BLAS threads (scoring uses both) for this process.

    One thread is fastest for request-sized batches: more threads spin between requests and
    take the CPU a server needs (OpenBLAS spun 2.5 ms of a second core per 256-row request).
    """
    torch.set_num_threads(max(1, threads))
    threadpool_limits(max(1, threads))


def _rows(inputs: Any) -> int:
    if isinstance(inputs, Features):
        return len(inputs)
    return len(next(iter(inputs.values()))) if inputs else 0


class TabularModel(Model):
    """Serves an exported mlworkloads model over V1 and V2; see `serving/payload.py` for the formats."""

    def __init__(self, name: str, model_dir: str = DEFAULT_MODEL_DIR, max_batch_size: int = DEFAULT_MAX_BATCH):
        super().__init__(name)
        self.model_dir = model_dir
        self.max_batch_size = max_batch_size
        self.loaded: LoadedModel | None = None

    def load(self) -> bool:
        """Loads and cross-checks the model directory, then proves it with a warm-up inference."""
        self.loaded = load(self.model_dir)
        preprocessor = self.loaded.preprocessor
        warm = {name: pa.array([None]) for name in preprocessor.feature_columns}
        scores = self.loaded.predict_columns(warm)
        if not np.isfinite(scores).all():
            raise RuntimeError(f"the warm-up inference of {self.model_dir!r} gave non-finite scores {scores!r}")
        # Each series is looked up once: `labels()` per request costs a lock and a dict lookup.
        outcomes = ["value"] if self.loaded.task == "regression" else [str(c) for c in preprocessor.classes]
        self._predicted = [PREDICTIONS.labels(self.name, outcome) for outcome in outcomes]
        self._series = (self.name,)
        self._binary = self.loaded.task == "binary"
        for outcome, share in (self.loaded.config.get("validation_class_shares") or {}).items():
            TRAINING_CLASS_SHARE.labels(self.name, outcome).set(share)
        self.ready = True
        log.info(
            "model %r loaded from %s (%s, %d features)",
            self.name,
            self.model_dir,
            self.loaded.task,
            len(preprocessor.feature_columns),
        )
        return self.ready

    def get_input_types(self) -> list[dict]:
        return formats.v2_input_types(self.loaded.preprocessor) if self.loaded else []

    def get_output_types(self) -> list[dict]:
        return formats.v2_output_types(self.loaded.preprocessor) if self.loaded else []

    async def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        preprocessor = self.loaded.preprocessor
        if isinstance(payload, (bytes, str)):
            # A V1 body sent without `Content-Type: application/json` arrives undecoded.
            try:
                payload = json.loads(payload)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InvalidInput(f"the request body is not valid JSON: {err}") from err
        if isinstance(payload, InferRequest):
            try:
                inputs = formats.v2_features(payload, preprocessor, self.max_batch_size)
            except TensorError as err:
                raise InvalidInput(str(err)) from err
        else:
            inputs = formats.v1_columns(payload, preprocessor, self.max_batch_size)
        # A few rows take a fraction of a millisecond: scored inline. Larger batches run in a
        # thread so that the event loop keeps answering health checks meanwhile.
        if _rows(inputs) <= INLINE_ROWS:
            scores = self._score(inputs)
        else:
            scores = await asyncio.to_thread(self._score, inputs)
        best = None if preprocessor.task == "regression" else scores.argmax(axis=1)
        self._observe(scores, best)
        if isinstance(payload, InferRequest):
            return formats.v2_response(scores, best, preprocessor, self.name, payload)
        return formats.v1_response(scores, best, preprocessor)

    def _score(self, inputs: Any) -> np.ndarray:
        try:
            if isinstance(inputs, Features):
                return self.loaded.scores(inputs)
            return self.loaded.predict_columns(inputs)
        except DataError as err:
            raise InvalidInput(str(err)) from err
        except Exception as err:
            raise InferenceError(f"inference failed: {type(err).__name__}: {err}") from err

    def _observe(self, scores: np.ndarray, best: np.ndarray | None) -> None:
        """Counts the batch's predictions per class (`best`, None for regression) and its scores."""
        if best is None:
            self._predicted[0].inc(len(scores))
            SCORES.observe(self._series, scores)
            return
        if len(best) <= SMALL_BATCH:  # a few increments cost less than numpy's fixed cost per call
            for index in best.tolist():
                self._predicted[index].inc()
        else:
            for index, count in enumerate(np.bincount(best, minlength=len(self._predicted)).tolist()):
                if count:
                    self._predicted[index].inc(count)
        SCORES.observe(self._series, scores[:, 1] if self._binary else scores.max(axis=1))
