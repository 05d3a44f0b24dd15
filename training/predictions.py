"""The predictions table: what a model predicted for held-out rows, in one shape for any model.

`evaluate_model` writes it for the built-in network, a team's job writes it for its own model,
`evaluate_predictions` scores it and the deploy smoke test reads it back. Columns:

- `label`: the true label (any name, given as `label_column`);
- a classifier's `predicted_class` and one `probability_<class>` per class, or a binary
  classifier's `score` (the positive class's probability);
- a regression's `prediction`.

Stored as Parquet or CSV; a directory artifact (a model directory) is searched for
`predictions.parquet` or `predictions.csv`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlworkloads.data.errors import DataError

LABEL_COLUMN = "label"
PREDICTION_COLUMN = "prediction"
PREDICTED_CLASS_COLUMN = "predicted_class"
SCORE_COLUMN = "score"
PROBABILITY_PREFIX = "probability_"
FILE_NAMES = ("predictions.parquet", "predictions.csv")
TASKS = ("auto", "binary", "multiclass", "regression")


def probability_column(label) -> str:
    return f"{PROBABILITY_PREFIX}{label}"


def predictions_table(task: str, classes: list | None, scores: np.ndarray, labels: pa.Array | None = None) -> pa.Table:
    """The table for `scores` (probabilities per class in `classes` order, or values)."""
    columns: dict[str, pa.Array | list | np.ndarray] = {}
    if labels is not None:
        columns[LABEL_COLUMN] = labels
    if task == "regression":
        columns[PREDICTION_COLUMN] = scores.astype(np.float64)
        return pa.table(columns)
    columns[PREDICTED_CLASS_COLUMN] = [str(classes[i]) for i in scores.argmax(axis=1)]
    for index, name in enumerate(classes):
        columns[probability_column(name)] = scores[:, index].astype(np.float64)
    return pa.table(columns)


def expected_scores(predictions: pa.Table, classes: list | None, rows: int) -> np.ndarray:
    """The first `rows` offline scores of a predictions table: values, or (rows, classes) probabilities."""
    if classes is None:
        return predictions[PREDICTION_COLUMN].to_numpy()[:rows]
    return np.column_stack([predictions[probability_column(c)].to_numpy()[:rows] for c in classes])


@dataclasses.dataclass
class Scored:
    """A predictions table read for scoring: encoded labels and the model's scores."""

    task: str
    labels: np.ndarray
    scores: np.ndarray
    classes: list[str] | None


def read_table(path: str, file_name: str = "") -> tuple[pa.Table, str]:
    """The predictions table at `path` (a file, or a directory holding one); returns it and its file."""
    if os.path.isdir(path):
        candidates = [file_name] if file_name else list(FILE_NAMES)
        found = [os.path.join(path, name) for name in candidates if os.path.isfile(os.path.join(path, name))]
        if not found:
            raise DataError(f"no predictions table in {path!r}: expected one of {candidates}.")
        path = found[0]
    elif not os.path.isfile(path):
        raise DataError(f"file not found: {path!r}. Check the predictions artifact.")
    try:
        if path.endswith(".csv"):
            return pacsv.read_csv(path), path
        return pq.read_table(path), path
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"cannot read the predictions table {path!r}: {err}") from err


def read_predictions(
    table: pa.Table, label_column: str = LABEL_COLUMN, task: str = "auto", source: str = "predictions"
) -> Scored:
    """Encoded labels and scores from a predictions table of any model, naming what is wrong.

    The task is inferred from the columns unless given: `prediction` means regression,
    `probability_<class>` columns a classifier (binary with two), `score` a binary classifier
    whose classes are the label's two values in sorted order (the second is the positive one).
    """
    if task not in TASKS:
        raise DataError(f"task={task!r}: expected one of {list(TASKS)}.")
    columns = table.column_names
    if label_column not in columns:
        raise DataError(f"{source} has no label column {label_column!r}; its columns are {columns}.")
    label = table[label_column]
    if label.null_count:
        row = pc.index(pc.is_null(label), True).as_py()
        raise DataError(f"{source}: the label {label_column!r} is missing in row {row}.")
    probability = [c for c in columns if c.startswith(PROBABILITY_PREFIX)]
    if task == "auto":
        if PREDICTION_COLUMN in columns:
            task = "regression"
        elif probability:
            task = "binary" if len(probability) == 2 else "multiclass"
        elif SCORE_COLUMN in columns:
            task = "binary"
        else:
            raise DataError(
                f"{source} has none of {PREDICTION_COLUMN!r}, {PROBABILITY_PREFIX}<class> or {SCORE_COLUMN!r} "
                f"columns; its columns are {columns}."
            )
    if task == "regression":
        if PREDICTION_COLUMN not in columns:
            raise DataError(f"{source}: a regression's table needs a {PREDICTION_COLUMN!r} column; it has {columns}.")
        return Scored(
            task,
            _numbers(label, label_column, source),
            _numbers(table[PREDICTION_COLUMN], PREDICTION_COLUMN, source),
            None,
        )
    texts = [str(v) for v in label.to_pylist()]
    if probability:
        classes = [c.removeprefix(PROBABILITY_PREFIX) for c in probability]
        scores = np.column_stack([_numbers(table[c], c, source) for c in probability])
    elif SCORE_COLUMN in columns:
        classes = sorted(set(texts))
        if len(classes) != 2:
            raise DataError(
                f"{source}: a {SCORE_COLUMN!r} column scores a binary classifier, but the label has "
                f"{len(classes)} values {classes[:10]}."
            )
        positive = _numbers(table[SCORE_COLUMN], SCORE_COLUMN, source)
        scores = np.column_stack([1.0 - positive, positive])
    else:
        raise DataError(
            f"{source}: a classifier's table needs {PROBABILITY_PREFIX}<class> columns or {SCORE_COLUMN!r}."
        )
    if ((scores < 0) | (scores > 1)).any():
        raise DataError(f"{source}: probabilities must lie in [0, 1].")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({t for t in texts if t not in index})
    if unknown:
        raise DataError(
            f"{source}: label values {unknown[:10]} have no {PROBABILITY_PREFIX}<class> column; classes are {classes}."
        )
    return Scored(task, np.array([index[t] for t in texts], dtype=np.int64), scores, classes)


def _numbers(column: pa.ChunkedArray, name: str, source: str) -> np.ndarray:
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataError(f"{source}: column {name!r} must hold numbers, not {column.type}.")
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{source}: column {name!r} is missing or not finite in row {int(bad[0])}.")
    return values
