"""The fitted preprocessor: a versioned JSON spec and one vectorised `transform`.

The preprocess step, the trainer and the predictor all call `Preprocessor.transform`, so the
features a model sees in serving are computed by the same code as in training.

Numeric columns: median imputation, a missing-value indicator, standardisation.
Categorical columns: the top-K values as a vocabulary; index 0 is the out-of-vocabulary (and
missing) bucket, so the indices feed an embedding directly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlworkloads.data.errors import DataError
from mlworkloads.data.preprocessor_spec import TASKS, spec_document, validate_spec

log = logging.getLogger(__name__)

LABEL_COLUMN = "__label__"
#: Up to this many rows, transform works on Python lists (see `Preprocessor.transform`).
SMALL_BATCH = 16
#: From this many rows, columns are fitted and transformed in parallel threads: Arrow's
#: kernels and numpy release the GIL, and a column costs milliseconds at this size.
PARALLEL_ROWS = 50_000

#: Up to this many rows, the text columns are looked up together (`_fill_categorical_block`):
#: below it each lookup's fixed cost dominates, above it the joined copy costs more (4,000
#: rows: the same; 40,000: 5.9 against 4.6 ms).
JOINED_LOOKUP_ROWS = 4096

#: Raw feature columns: a table, or one Arrow array, Python list or numpy array of values per
#: feature (the predictor hands over lists for a few rows, so that they never round-trip through
#: Arrow, and a V2 tensor as numpy: it has no null, so a NaN in it is a missing value).
Columns = pa.Table | Mapping[str, pa.Array | pa.ChunkedArray | list | np.ndarray]


@dataclasses.dataclass(kw_only=True)
class PreprocessorOptions:
    """How roles are chosen when fitting.

    Attributes:
        label_column: The target column.
        task: "auto", or one of `TASKS`.
        categorical_columns: Force these columns to be categorical (e.g. integer codes).
        numeric_columns: Force these columns to be numeric.
        exclude_columns: Never use these as features.
        max_categories: Vocabulary size per categorical column (top-K by frequency).
        min_frequency: Values seen fewer times than this in train go to the OOV bucket.
        identifier_ratio: A text column with more distinct values than this share of rows,
            and over 100 of them, is identifier-like and excluded.
    """

    label_column: str
    task: str = "auto"
    categorical_columns: list[str] = dataclasses.field(default_factory=list)
    numeric_columns: list[str] = dataclasses.field(default_factory=list)
    exclude_columns: list[str] = dataclasses.field(default_factory=list)
    max_categories: int = 100
    min_frequency: int = 1
    identifier_ratio: float = 0.5

    def __post_init__(self):
        if not self.label_column:
            raise DataError("label_column is empty: name the column to predict.")
        if self.task != "auto" and self.task not in TASKS:
            raise DataError(f"task={self.task!r}: expected 'auto' or one of {list(TASKS)}.")
        if self.max_categories < 1:
            raise DataError(f"max_categories={self.max_categories!r}: expected a positive count.")
        both = set(self.categorical_columns) & set(self.numeric_columns)
        if both:
            raise DataError(f"columns {sorted(both)!r} are in both categorical_columns and numeric_columns.")


@dataclasses.dataclass
class Features:
    """Model inputs for a batch: float32 numeric block and int64 categorical indices."""

    numeric: np.ndarray
    categorical: np.ndarray

    def __len__(self) -> int:
        return self.numeric.shape[0]


@dataclasses.dataclass(kw_only=True)
class Preprocessor:
    """A fitted preprocessor; build with `fit` or `from_json`, never by hand."""

    task: str
    label: str
    classes: list[Any] | None
    numeric: list[dict[str, Any]]
    categorical: list[dict[str, Any]]
    excluded: list[dict[str, str]]

    @functools.cached_property
    def _numeric_stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Medians, means and standard deviations of the numeric columns, as (columns, 1) arrays."""
        return tuple(np.array([[c[key]] for c in self.numeric], dtype=np.float64) for key in ("median", "mean", "std"))

    # ---- what the model needs to know -------------------------------------------------

    @functools.cached_property
    def feature_columns(self) -> list[str]:
        """The raw input columns a request must carry, numeric first (read on every request)."""
        return [c["name"] for c in self.numeric] + [c["name"] for c in self.categorical]

    @property
    def numeric_width(self) -> int:
        """Width of `Features.numeric`: a standardised value and a missing flag per column."""
        return 2 * len(self.numeric)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table size per categorical column (vocabulary + the OOV bucket)."""
        return [len(c["vocabulary"]) + 1 for c in self.categorical]

    @property
    def output_size(self) -> int:
        """Logits per row: 1 for binary and regression, one per class for multiclass."""
        return len(self.classes) if self.task == "multiclass" else 1

    # ---- transform ---------------------------------------------------------------------

    def transform(self, data: Columns) -> Features:
        """Turns raw columns into model inputs, vectorised over the batch.

        Raises:
            DataError: a feature is missing, has the wrong type, or holds NaN/infinity
                (naming the column and row). Unknown categories are not an error.
        """
        n_rows = _num_rows(data)
        if n_rows <= SMALL_BATCH:
            return self._transform_small(data, n_rows)
        # Column-major: every fill below writes whole columns, which are then contiguous (a
        # row-major array made each column's write touch every cache line of the whole array).
        numeric = np.empty((n_rows, self.numeric_width), dtype=np.float32, order="F")
        categorical = np.empty((n_rows, len(self.categorical)), dtype=np.int64, order="F")
        k = len(self.numeric)

        def numeric_column(i: int) -> None:
            spec = self.numeric[i]
            values, missing = _numeric_values(_arrow(_column(data, spec["name"]), spec["name"]), spec["name"])
            np.copyto(values, spec["median"], where=missing)
            numeric[:, i] = (values - spec["mean"]) / spec["std"]
            numeric[:, k + i] = missing

        def categorical_column(j: int) -> None:
            spec = self.categorical[j]
            categorical[:, j] = _category_indices(spec, _arrow(_column(data, spec["name"]), spec["name"]))

        if n_rows < PARALLEL_ROWS:
            # Every numeric column in one block, a few numpy calls in all; at request size every
            # text column in one lookup too.
            self._fill_numeric_block(data, numeric)
            if n_rows <= JOINED_LOOKUP_ROWS:
                self._fill_categorical_block(data, categorical)
                return Features(numeric=numeric, categorical=categorical)
            fills = []
        else:
            fills = [functools.partial(numeric_column, i) for i in range(k)]
        # Each fill writes its own columns of the two arrays.
        fills += [functools.partial(categorical_column, j) for j in range(len(self.categorical))]
        _per_column(lambda fill: fill(), fills, n_rows)
        return Features(numeric=numeric, categorical=categorical)

    def _fill_numeric_block(self, data: Columns, numeric: np.ndarray) -> None:
        """The numeric part of `transform` for all numeric columns at once: (columns, rows)
        float64, imputed and standardised with the same float64 arithmetic as column by column,
        and refused with the same errors (the first bad column is re-checked alone to name it)."""
        k = len(self.numeric)
        if not k:
            return
        block = np.empty((k, len(numeric)), dtype=np.float64)
        columns = []
        for i, spec in enumerate(self.numeric):
            column = _column(data, spec["name"])
            # A numpy array is taken as it is: converting it to Arrow and back cost ~6 us a column.
            columns.append(column if isinstance(column, np.ndarray) else _arrow(column, spec["name"]))
            block[i] = _as_floats(columns[i], spec["name"])
        missing = np.isnan(block)
        # Every NaN must be a null, except in a numpy array, where NaN is how a value is missing.
        nulls = np.array([-1 if isinstance(column, np.ndarray) else column.null_count for column in columns])
        bad = ((missing.sum(axis=1) != nulls) & (nulls >= 0)) | np.isinf(block).any(axis=1)
        if bad.any():
            first = int(np.argmax(bad))
            name = self.numeric[first]["name"]
            _numeric_values(_arrow(columns[first], name), name)  # raises, naming the row
        medians, means, stds = self._numeric_stats
        np.copyto(block, medians, where=missing)
        block -= means
        block /= stds
        numeric[:, :k] = block.T
        numeric[:, k:] = missing.T

    def _fill_categorical_block(self, data: Columns, categorical: np.ndarray) -> None:
        """The categorical part of `transform` with the text columns looked up in one Arrow call.

        An `index_in` call costs ~15 us before it looks at a value, and its `fill_null` ~8 us:
        at request size that was most of each column's lookup. The columns are joined and
        looked up once in the union of the vocabularies (`_text_lookup`); each column's codes
        are then its own vocabulary's indices, picked from one row of a table. Whole-number
        columns with a whole-number vocabulary are looked up as numbers, as `_category_indices`
        does.
        """
        texts, positions = [], []
        for j, spec in enumerate(self.categorical):
            column = _arrow(_column(data, spec["name"]), spec["name"])
            if spec["_int_value_set"] is not None and column.type == pa.int64():
                categorical[:, j] = _category_indices(spec, column)
            else:
                texts.append(_as_strings(column, spec["name"]))
                positions.append(j)
        if not texts:
            return
        union, codes = self._text_lookup
        chunks = [chunk for text in texts for chunk in (text.chunks if isinstance(text, pa.ChunkedArray) else [text])]
        found = pc.index_in(pa.chunked_array(chunks, type=pa.string()), value_set=union)
        # Nulls and unseen values point past the union, at each table row's last entry: 0.
        index = pc.fill_null(found, len(union)).to_numpy(zero_copy_only=False).reshape(len(texts), -1)
        rows = np.array(positions)
        categorical[:, rows] = codes[rows[:, None], index].T

    @functools.cached_property
    def _text_lookup(self) -> tuple[pa.Array, np.ndarray]:
        """Every categorical vocabulary's values once (text), and per categorical column a row
        mapping each of them, and one more slot for a miss, to that column's code (index + 1, or
        0 where the value is not in its vocabulary)."""
        where: dict[str, int] = {}
        for spec in self.categorical:
            for value in spec["vocabulary"]:
                where.setdefault(value, len(where))
        codes = np.zeros((len(self.categorical), len(where) + 1), dtype=np.int64)
        for j, spec in enumerate(self.categorical):
            codes[j, [where[value] for value in spec["vocabulary"]]] = np.arange(1, len(spec["vocabulary"]) + 1)
        return pa.array(list(where), type=pa.string()), codes

    @functools.cached_property
    def _small_plan(self) -> tuple[list[tuple[str, float, float, float]], list[tuple[str, dict, dict]]]:
        """`_transform_small`'s constants: (name, mean, std, a missing value's standardised
        median) per numeric column, (name, vocabulary lookup, spec) per categorical one."""
        numeric = [(s["name"], s["mean"], s["std"], (s["median"] - s["mean"]) / s["std"]) for s in self.numeric]
        return numeric, [(s["name"], s["_lookup"], s) for s in self.categorical]

    def _transform_small(self, data: Columns, n_rows: int) -> Features:
        """`transform` of a few rows in plain Python, with two numpy calls at the end.

        At request size the fixed cost of each Arrow kernel or numpy call (1-3 us, more once
        a server's request path has evicted them from the caches) outweighs the arithmetic:
        the same float64 arithmetic per value, rounded to float32 once, gives results
        identical to the vectorised path, and the same checks give the same errors. Values
        are gathered column by column into one flat list per block, which numpy reads in one
        pass and views row-major (a list of row tuples cost a nested-sequence discovery).
        """
        numeric_plan, categorical_plan = self._small_plan
        standardised: list[float] = []
        missing: list[float] = []
        for name, mean, std, imputed in numeric_plan:
            _standardise_small(_column(data, name), name, mean, std, imputed, standardised, missing)
        codes: list[int] = []
        for name, lookup, spec in categorical_plan:
            column = _column(data, name)
            if isinstance(column, np.ndarray):
                column = _arrow(column, name)
            raw = _texts_or_whole_numbers(column)
            if raw is None:  # booleans or floats: looked up as their text, as the vectorised path does
                codes += _category_indices(spec, _arrow(column, name)).tolist()
            else:
                codes += [0 if v is None else lookup.get(v if type(v) is str else str(v), 0) for v in raw]
        numeric = np.array(standardised + missing, dtype=np.float32).reshape(self.numeric_width, n_rows).T
        categorical = np.array(codes, dtype=np.int64).reshape(len(categorical_plan), n_rows).T
        return Features(numeric=numeric, categorical=categorical)

    def encode_labels(self, labels: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Class indices (int64) for classification, float32 values for regression."""
        if labels.null_count:
            raise DataError(f"label {self.label!r} has {labels.null_count} null value(s).")
        if self.task == "regression":
            return _numeric_values(labels, self.label)[0].astype(np.float32)
        value_set = pa.array(self.classes)
        index = pc.index_in(labels.cast(value_set.type), value_set=value_set)
        if index.null_count:
            unseen = pc.unique(pc.filter(labels, pc.is_null(index))).to_pylist()
            raise DataError(
                f"label {self.label!r} has value(s) {unseen!r} not seen in train (classes {self.classes!r})."
            )
        return index.to_numpy(zero_copy_only=False).astype(np.int64)

    # ---- the transformed tables the preprocess step writes and the trainer reads ----------

    def to_table(self, features: Features, labels: np.ndarray | None = None) -> pa.Table:
        """The model inputs as a Parquet-ready table (one column per input)."""
        names = [f"num:{c['name']}" for c in self.numeric] + [f"isnull:{c['name']}" for c in self.numeric]
        arrays = [pa.array(features.numeric[:, i]) for i in range(self.numeric_width)]
        names += [f"cat:{c['name']}" for c in self.categorical]
        arrays += [pa.array(features.categorical[:, j]) for j in range(len(self.categorical))]
        if labels is not None:
            names.append(LABEL_COLUMN)
            arrays.append(pa.array(labels))
        return pa.Table.from_arrays(arrays, names=names)

    def from_table(self, table: pa.Table) -> tuple[Features, np.ndarray]:
        """Inverse of `to_table`: (features, labels) as numpy arrays."""
        numeric_names = [f"num:{c['name']}" for c in self.numeric] + [f"isnull:{c['name']}" for c in self.numeric]
        categorical_names = [f"cat:{c['name']}" for c in self.categorical]
        missing = [n for n in [*numeric_names, *categorical_names, LABEL_COLUMN] if n not in table.column_names]
        if missing:
            raise DataError(f"the preprocessed table lacks columns {missing!r}: was it made by this preprocessor?")
        numeric = np.column_stack(
            [table[n].to_numpy() for n in numeric_names] or [np.empty((table.num_rows, 0))]
        ).astype(np.float32)
        categorical = np.column_stack(
            [table[n].to_numpy() for n in categorical_names] or [np.empty((table.num_rows, 0))]
        ).astype(np.int64)
        return Features(numeric=numeric, categorical=categorical), np.array(table[LABEL_COLUMN].to_numpy())

    # ---- persistence -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return spec_document(
            task=self.task,
            label=self.label,
            classes=self.classes,
            numeric=self.numeric,
            categorical=[{k: v for k, v in c.items() if not k.startswith("_")} for c in self.categorical],
            excluded=self.excluded,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str = "preprocessor spec") -> Preprocessor:
        """Builds a preprocessor from its JSON spec, refusing tampered or newer specs."""
        validate_spec(spec, source)
        categorical = [
            {
                **c,
                "_value_set": pa.array(c["vocabulary"], type=pa.string()),
                "_lookup": {value: index + 1 for index, value in enumerate(c["vocabulary"])},
                "_int_value_set": _whole_numbers(c["vocabulary"]),
            }
            for c in spec["categorical"]
        ]
        return cls(
            task=spec["task"],
            label=spec["label"]["name"],
            classes=spec["label"]["classes"],
            numeric=[dict(c) for c in spec["numeric"]],
            categorical=categorical,
            excluded=list(spec.get("excluded", [])),
        )

    @classmethod
    def from_json(cls, text: str, source: str = "preprocessor spec") -> Preprocessor:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{source} is not valid JSON: {err}") from err
        return cls.from_dict(spec, source)


def fit(table: pa.Table, options: PreprocessorOptions) -> Preprocessor:
    """Learns roles, statistics, vocabularies and label classes from the train split only."""
    if options.label_column not in table.column_names:
        raise DataError(
            f"label_column {options.label_column!r} is not in the table; its columns are {table.column_names!r}."
        )
    for name in [*options.categorical_columns, *options.numeric_columns, *options.exclude_columns]:
        if name not in table.column_names:
            raise DataError(f"column {name!r} named in the preprocessor options is not in the table.")
    labels = table[options.label_column]
    task = options.task if options.task != "auto" else _infer_task(labels)
    classes = None
    if task != "regression":
        classes = sorted(pc.unique(labels).to_pylist(), key=lambda v: (v is None, v))
        if len(classes) < 2:
            raise DataError(f"label {options.label_column!r} has one class {classes!r}: nothing to learn.")
        if task == "binary" and len(classes) != 2:
            raise DataError(f"task='binary' but label {options.label_column!r} has {len(classes)} classes.")
    elif not _is_number(labels.type):
        raise DataError(f"task='regression' needs a numeric label; {options.label_column!r} is {labels.type}.")

    def fit_column(name: str) -> tuple[str, Any]:
        column = table[name]
        role, reason = _role(name, column, table.num_rows, options)
        if role == "exclude":
            return role, {"name": name, "reason": reason}
        if column.null_count == len(column):
            raise DataError(
                f"column {name!r} is entirely null in train ({len(column)} rows): nothing to learn from. "
                "Drop it at ingest (drop_columns) or list it in exclude_columns."
            )
        return role, _fit_numeric(name, column) if role == "numeric" else _fit_categorical(name, column, options)

    names = [name for name in table.column_names if name != options.label_column]
    numeric, categorical, excluded = [], [], []
    for role, entry in _per_column(fit_column, names, table.num_rows):
        if role == "exclude":
            log.info("excluding column %r: %s", entry["name"], entry["reason"])
        {"numeric": numeric, "categorical": categorical, "exclude": excluded}[role].append(entry)
    spec = spec_document(
        task=task,
        label=options.label_column,
        classes=classes,
        numeric=numeric,
        categorical=categorical,
        excluded=excluded,
    )
    if not numeric and not categorical:
        raise DataError(f"no feature columns are left after exclusions: {excluded!r}.")
    return Preprocessor.from_dict(spec)


def _infer_task(labels: pa.ChunkedArray) -> str:
    n_classes = len(pc.unique(labels))
    if pa.types.is_floating(labels.type):
        return "regression"
    if pa.types.is_integer(labels.type) and n_classes > 20:
        return "regression"
    return "binary" if n_classes == 2 else "multiclass"


def _per_column(function, items: list, n_rows: int) -> list:
    """`[function(item) for item in items]`, in threads when the columns are long enough to pay."""
    if n_rows < PARALLEL_ROWS or len(items) < 2 or (os.cpu_count() or 1) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))


def _is_number(type_: pa.DataType) -> bool:
    return pa.types.is_integer(type_) or pa.types.is_floating(type_)


def _role(name: str, column: pa.ChunkedArray, n_rows: int, options: PreprocessorOptions):
    if name in options.exclude_columns:
        return "exclude", "listed in exclude_columns"
    if name in options.numeric_columns:
        if not (_is_number(column.type) or pa.types.is_boolean(column.type)):
            raise DataError(f"numeric_columns names {name!r}, but it holds {column.type}, not numbers.")
        return "numeric", ""
    if name in options.categorical_columns:
        return "categorical", ""
    if _is_number(column.type):
        # Constant iff min == max: a pass over the values, where counting distinct ones hashes them.
        extremes = pc.min_max(column)
        if extremes["min"].is_valid and extremes["min"].as_py() == extremes["max"].as_py():
            return "exclude", f"constant: every non-null value is {extremes['min'].as_py()!r}"
        return "numeric", ""
    distinct = len(pc.unique(column.drop_null()))
    if distinct == 1:
        return "exclude", f"constant: every non-null value is {pc.unique(column.drop_null())[0].as_py()!r}"
    if pa.types.is_boolean(column.type) or pa.types.is_dictionary(column.type):
        return "categorical", ""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        if distinct > 100 and distinct > options.identifier_ratio * n_rows:
            return "exclude", f"identifier-like: {distinct} distinct values in {n_rows} rows"
        mean_length = pc.mean(pc.utf8_length(column.drop_null())).as_py() or 0
        if mean_length > 50:
            return "exclude", f"free text: mean length {mean_length:.0f} characters"
        return "categorical", ""
    return "exclude", f"unsupported type {column.type}: derive numeric or text columns from it at ingest"


def _fit_numeric(name: str, column: pa.ChunkedArray) -> dict[str, Any]:
    values, missing = _numeric_values(column, name)
    median = float(np.median(values[~missing]))
    # Statistics of the imputed column, which is what transform standardises.
    imputed = np.where(missing, median, values)
    return {"name": name, "median": median, "mean": float(imputed.mean()), "std": float(imputed.std()) or 1.0}


def _fit_categorical(name: str, column: pa.ChunkedArray, options: PreprocessorOptions) -> dict[str, Any]:
    if _is_number(column.type) or pa.types.is_boolean(column.type):
        # Count the numbers, then turn only the distinct ones into text (as `transform` does).
        counted = pc.value_counts(column.drop_null())
        values = _as_strings(counted.field("values"), name)
    else:
        counted = pc.value_counts(_as_strings(column, name).drop_null())
        values = counted.field("values")
    pairs = zip(values.to_pylist(), counted.field("counts").to_pylist(), strict=True)
    kept = sorted(((v, n) for v, n in pairs if n >= options.min_frequency), key=lambda p: (-p[1], p[0]))
    vocabulary = [value for value, _ in kept[: options.max_categories]]
    if len(kept) > options.max_categories:
        log.info("column %r: kept the %d most frequent of %d values", name, len(vocabulary), len(kept))
    return {"name": name, "vocabulary": vocabulary}


def _num_rows(data: Columns) -> int:
    if isinstance(data, pa.Table):
        return data.num_rows
    lengths = {len(v) for v in data.values()}
    if len(lengths) > 1:
        raise DataError(f"feature columns have different lengths {sorted(lengths)}.")
    return lengths.pop() if lengths else 0


def _column(data: Columns, name: str):
    try:
        return data[name]
    except KeyError:
        pass
    names = data.column_names if isinstance(data, pa.Table) else list(data)
    if name not in names:
        raise DataError(f"feature {name!r} is missing; the input has {sorted(names)!r}.")
    return data[name]


def _numeric_values(column, name: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (nulls as NaN, to be imputed) and the missing mask; refuses non-numbers."""
    values = _as_floats(column, name)
    missing = np.isnan(values)
    if column.null_count != int(missing.sum()) or np.isinf(values).any():
        # A NaN that was not a null, or an infinity: a real value we cannot standardise.
        valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(valid & ~np.isfinite(values))
        raise DataError(
            f"feature {name!r} row {int(bad[0]) + 1} is {float(values[bad[0]])!r}: numbers must be finite "
            "(send null for a missing value)."
        )
    return values, missing


def _check_numeric_input(column, name: str) -> None:
    """Refuses an Arrow column a numeric feature cannot take (numbers, booleans and nulls can)."""
    kind = column.type
    if not (_is_number(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
        raise DataError(f"feature {name!r} must be a number, but received {kind} values.")


def _as_floats(column, name: str) -> np.ndarray:
    """A numeric, boolean or null column as a new float64 array, nulls as NaN; refuses the rest."""
    if isinstance(column, np.ndarray):
        if column.dtype.kind not in "biuf":
            raise DataError(f"feature {name!r} must be a number, but received {column.dtype} values.")
        return column.astype(np.float64)
    _check_numeric_input(column, name)
    if _is_number(column.type):
        # numpy converts these (nulls arrive as NaN) at a fraction of a `pc.cast` call's fixed cost,
        # and rounds whole numbers past 2**53 as float() does, where Arrow's safe cast refuses them.
        return np.array(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.array(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _arrow(column, name: str):
    """An Arrow column; a Python list of values is converted (refusing mixed types, naming the
    feature), and a numpy array with its NaN as nulls."""
    if isinstance(column, np.ndarray):
        try:
            return pa.array(column, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise DataError(f"feature {name!r} holds values Arrow cannot take: {err}") from err
    if not isinstance(column, list):
        return column
    try:
        return pa.array(column)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
        raise DataError(f"feature {name!r} mixes types or holds values Arrow cannot take: {err}") from err


def _whole_numbers(vocabulary: list[str]) -> pa.Array | None:
    """The vocabulary as int64 when every entry is a whole number written as Arrow writes one."""
    try:
        numbers = [int(v) for v in vocabulary]
    except ValueError:
        return None
    if [str(n) for n in numbers] != vocabulary or not all(-(2**63) <= n < 2**63 for n in numbers):
        return None
    return pa.array(numbers, type=pa.int64())


def _texts_or_whole_numbers(column) -> list | None:
    """The values as a Python list when each is text, a whole number or null (looked up as
    `str(value)`, which is how Arrow casts them too); None for anything else (booleans, floats)."""
    if isinstance(column, list):
        ok = all(v is None or type(v) is str or type(v) is int for v in column)
        return column if ok else None
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind):
        return column.to_pylist()
    return None


def _standardise_small(
    column, name: str, mean: float, std: float, imputed: float, standardised: list[float], missing: list[float]
) -> None:
    """Appends a few values of a numeric feature standardised in Python floats (nulls as
    `imputed`, the standardised median) and their missing flags; values are refused as
    `_numeric_values` refuses them."""
    if isinstance(column, np.ndarray):
        column = _arrow(column, name)
    if type(column) is not list:
        _check_numeric_input(column, name)
        column = column.to_pylist()
    for row, value in enumerate(column):
        if value is None:
            standardised.append(imputed)
            missing.append(1.0)
            continue
        if type(value) is not float:
            if not isinstance(value, (int, float)):  # bool is an int
                kind = "string" if isinstance(value, str) else type(value).__name__
                raise DataError(f"feature {name!r} must be a number, but received {kind} values.")
            try:
                value = float(value)
            except OverflowError as err:
                raise DataError(f"feature {name!r} holds a number too large for a float: {err}") from err
        if not math.isfinite(value):
            raise DataError(
                f"feature {name!r} row {row + 1} is {value!r}: numbers must be finite (send null for a missing value)."
            )
        standardised.append((value - mean) / std)
        missing.append(0.0)


def _category_indices(spec: dict[str, Any], column) -> np.ndarray:
    """Vocabulary index + 1 of each value of an Arrow column; 0 for null and unseen values."""
    if spec["_int_value_set"] is not None and column.type == pa.int64():
        # Whole numbers looked up as numbers: the same match as their text, without turning
        # every value into a string first.
        index = pc.index_in(column, value_set=spec["_int_value_set"])
    else:
        index = pc.index_in(_as_strings(column, spec["name"]), value_set=spec["_value_set"])
    return pc.fill_null(index, -1).to_numpy(zero_copy_only=False) + 1


def _as_strings(column, name: str):
    type_ = column.type
    if pa.types.is_string(type_) or pa.types.is_null(type_):
        return column.cast(pa.string())
    if pa.types.is_dictionary(type_) or pa.types.is_large_string(type_):
        return pc.cast(column, pa.string())
    if _is_number(type_) or pa.types.is_boolean(type_):
        return pc.cast(column, pa.string())
    raise DataError(f"feature {name!r} must be text or a number, but received {type_} values.")
