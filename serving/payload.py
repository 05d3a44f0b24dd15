"""Turning V1 and V2 (Open Inference Protocol) request bodies into feature columns, and back.

Every problem with a payload raises `kserve.errors.InvalidInput` (HTTP 400) naming the field.
"""

from __future__ import annotations

import functools
import math
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from mlworkloads.data import tensors
from mlworkloads.data.preprocessor import SMALL_BATCH, Features, Preprocessor

#: Name of the V2 input that carries already-preprocessed features as one FP32 tensor.
FEATURES_INPUT = "features"


def v1_columns(body: Any, preprocessor: Preprocessor, max_batch: int) -> dict[str, pa.Array]:
    """`{"instances": [{feature: value, ...}, ...]}` -> one Arrow array per feature."""
    if not isinstance(body, dict) or "instances" not in body:
        raise InvalidInput('expected a JSON object with "instances": a list of {feature: value} objects.')
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('"instances" must be a non-empty list of {feature: value} objects.')
    if len(instances) > max_batch:
        raise InvalidInput(f'"instances" has {len(instances)} rows; the maximum batch is {max_batch}.')
    if len(instances) <= SMALL_BATCH:
        # A few rows stay Python lists: the preprocessor reads them as they are, where a trip
        # through Arrow and back would cost more than the rest of the request's scoring.
        return _checked_columns(instances, preprocessor, as_lists=True)
    # Well-formed batches take one list comprehension and one Arrow conversion per column;
    # anything odd is re-checked value by value below, to name the row and field at fault.
    try:
        columns = {name: pa.array([instance[name] for instance in instances]) for name in preprocessor.feature_columns}
    except (KeyError, TypeError, ValueError, OverflowError, pa.ArrowException):
        columns = None
    if columns is not None and all(_is_clean(array) for array in columns.values()):
        return columns
    return _checked_columns(instances, preprocessor)


def _is_clean(array: pa.Array) -> bool:
    """A flat column of text, whole numbers, booleans or finite floats (nulls allowed)."""
    kind = array.type
    if pa.types.is_floating(kind):
        return pc.all(pc.is_finite(array)).as_py() is not False
    return pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)


def _checked_columns(
    instances: list[Any], preprocessor: Preprocessor, as_lists: bool = False
) -> dict[str, pa.Array | list]:
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidInput(f"instances[{i}] must be an object of feature values, got {type(instance).__name__}.")
    columns = {}
    for name in preprocessor.feature_columns:
        values = []
        for i, instance in enumerate(instances):
            if name not in instance:
                raise InvalidInput(f"instances[{i}] is missing feature {name!r}.")
            values.append(_scalar(instance[name], name, i))
        columns[name] = _uniform(values, name) if as_lists else _array(values, name)
    return columns


def _scalar(value: Any, name: str, row: int) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"feature {name!r} in instances[{row}] is {value!r}: numbers must be finite.")
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidInput(f"feature {name!r} holds a whole number too large for 64 bits (instances[{row}]).")
        return value
    raise InvalidInput(
        f"feature {name!r} in instances[{row}] must be a number, text or null; got {type(value).__name__}."
    )


def _uniform(values: list[Any], name: str) -> list[Any]:
    """The values, refused as Arrow would refuse them when they mix text, booleans and numbers."""
    if len(values) < 2:
        return values
    kinds = {"number" if type(v) in (int, float) else type(v).__name__ for v in values if v is not None}
    if len(kinds) > 1:
        raise InvalidInput(f"feature {name!r} mixes types across instances: {sorted(kinds)}.")
    return values


def _array(values: list[Any], name: str) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InvalidInput(f"feature {name!r} mixes types across instances: {err}") from err


def v2_features(
    request: InferRequest, preprocessor: Preprocessor, max_batch: int
) -> dict[str, pa.Array | np.ndarray] | Features:
    """V2 inputs -> feature columns (one input per feature) or preprocessed `Features`.

    Inputs come as JSON data or as binary tensors (REST's binary extension, gRPC's raw
    contents); either way each column is decoded whole, never value by value. A tensor has no
    null, so a numeric input's NaN is a missing value (imputed as the preprocessor was fitted).
    """
    inputs = {i.name: i for i in request.inputs}
    if not inputs:
        raise InvalidInput('the request has no "inputs".')
    if FEATURES_INPUT in inputs and len(inputs) == 1:
        return _preprocessed(inputs[FEATURES_INPUT], preprocessor, max_batch)
    missing = [n for n in preprocessor.feature_columns if n not in inputs]
    if missing:
        raise InvalidInput(
            f"inputs {missing!r} are missing: send one input per feature column {preprocessor.feature_columns!r}, "
            f'or one FP32 input named "{FEATURES_INPUT}" of preprocessed features.'
        )
    numeric = {c["name"] for c in preprocessor.numeric}
    columns, rows = {}, None
    for name in preprocessor.feature_columns:
        item = inputs[name]
        tensors.check_datatype(name, item.datatype)
        if name in numeric and item.datatype not in tensors.NUMERIC_DTYPES:
            raise InvalidInput(f"input {name!r} is numeric: send it as FP32/FP64/INT*, not {item.datatype}.")
        shape = list(item.shape)
        tensors.element_count(name, shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidInput(f"input {name!r} must have shape [batch] or [batch, 1], got {shape}.")
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise InvalidInput(f"input {name!r} has {shape[0]} rows; the other inputs have {rows}.")
        if item.datatype == "BYTES":
            columns[name] = _text_column(item, shape)
        else:
            values = _numeric_column(item, shape)
            if values.dtype.kind == "f" and np.isinf(values).any():
                raise InvalidInput(f"input {name!r} holds infinity: numbers must be finite (NaN for a missing value).")
            # A tensor has no null: NaN stands for a missing value, which the preprocessor imputes
            # (it takes a numpy array of numbers so, without a trip through Arrow). JSON data with
            # nulls arrives as objects.
            if name in numeric and values.dtype.kind in "biuf":
                columns[name] = values
            else:
                columns[name] = pa.array(values, from_pandas=True)
    _check_batch(rows or 0, max_batch)
    return columns


def _numeric_column(item: InferInput, shape: list[int]) -> np.ndarray:
    values = _tensor(item).reshape(-1)
    if values.size != shape[0]:
        raise InvalidInput(f"input {item.name!r} has {values.size} values for shape {shape}.")
    return values


def _text_column(item: InferInput, shape: list[int]) -> pa.Array:
    raw = item._raw_data
    if raw is not None:
        return tensors.decode_bytes(item.name, shape, raw)
    data = item.data
    try:
        column = pa.array(data, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        # Nested lists, bytes or numbers: flattened and turned into text value by value.
        flat = _as_numpy(item).reshape(-1)
        column = pa.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat])
    if len(column) != shape[0]:
        raise InvalidInput(f"input {item.name!r} has {len(column)} values for shape {shape}.")
    return column


def _tensor(item: InferInput) -> np.ndarray:
    """A numeric input as an array of its shape."""
    raw = item._raw_data  # a binary tensor's bytes (KServe's field, for REST and gRPC alike)
    if raw is not None:
        return tensors.decode_numeric(item.name, item.datatype, list(item.shape), raw).reshape(item.shape)
    return _as_numpy(item)


def _as_numpy(item: InferInput) -> np.ndarray:
    try:
        return item.as_numpy()
    except InvalidInput:
        raise
    except Exception as err:  # noqa: BLE001 - numpy raises many types for bad tensors
        raise InvalidInput(
            f"input {item.name!r} ({item.datatype}, shape {item.shape}) cannot be decoded: {err}"
        ) from err


def _check_batch(rows: int, max_batch: int) -> None:
    if rows == 0:
        raise InvalidInput("the request holds no rows.")
    if rows > max_batch:
        raise InvalidInput(f"the request has {rows} rows; the maximum batch is {max_batch}.")


def _preprocessed(item: InferInput, preprocessor: Preprocessor, max_batch: int) -> Features:
    width = preprocessor.numeric_width + len(preprocessor.categorical)
    if item.datatype not in ("FP32", "FP64"):
        raise InvalidInput(f'input "{FEATURES_INPUT}" must be FP32, not {item.datatype}.')
    values = _tensor(item)
    if values.ndim != 2 or values.shape[1] != width:
        raise InvalidInput(f'input "{FEATURES_INPUT}" must have shape [batch, {width}], got {list(values.shape)}.')
    _check_batch(values.shape[0], max_batch)
    if not np.isfinite(values).all():
        raise InvalidInput(f'input "{FEATURES_INPUT}" holds NaN or infinity.')
    categorical = values[:, preprocessor.numeric_width :]
    cardinalities = np.array(preprocessor.cardinalities)
    if (categorical != np.round(categorical)).any() or (categorical < 0).any() or (categorical >= cardinalities).any():
        raise InvalidInput(
            f'input "{FEATURES_INPUT}": columns {preprocessor.numeric_width}.. are category indices and must be '
            f"whole numbers in [0, cardinality) for cardinalities {preprocessor.cardinalities}."
        )
    return Features(
        numeric=np.ascontiguousarray(values[:, : preprocessor.numeric_width], dtype=np.float32),
        categorical=categorical.astype(np.int64),
    )


def v1_response(scores: np.ndarray, best: np.ndarray | None, preprocessor: Preprocessor) -> dict[str, Any]:
    """`{"predictions": [...]}`: class and probabilities per row, or the value for regression.

    `best` is each row's predicted class index (`scores.argmax(axis=1)`), None for regression.
    """
    if best is None:
        return {"predictions": scores.tolist()}
    classes = preprocessor.classes
    names = [str(c) for c in classes]  # JSON object keys are text, whatever the label's type
    return {
        "predictions": [
            # zip(strict=True) would cost a third of this loop; the lengths match by construction.
            {"class": classes[b], "probabilities": dict(zip(names, row, strict=False))}
            for b, row in zip(best.tolist(), scores.tolist(), strict=False)
        ]
    }


def v2_response(
    scores: np.ndarray, best: np.ndarray | None, preprocessor: Preprocessor, model_name: str, request: InferRequest
) -> InferResponse:
    """Named, typed outputs: `predicted_class` (BYTES) and `probabilities` (FP32), or `prediction`.

    Only the outputs the request names are returned, each as JSON data or as a binary tensor
    as the request asks (`binary_data` per output, `binary_data_output` for all; always binary
    over gRPC, as Triton answers and `tritonclient.grpc` reads).
    """
    outputs = []
    for name, binary in _chosen_outputs(request, [o["name"] for o in v2_output_types(preprocessor)]).items():
        if name in ("prediction", "probabilities"):
            outputs.append(_output(name, "FP32", scores.astype(np.float32, copy=False), binary))
        else:
            texts, encoded = _class_labels(tuple(str(c) for c in preprocessor.classes))
            if binary:
                output = InferOutput(name, [len(best)], "BYTES")
                output._raw_data = tensors.encode_bytes_by_index(encoded, best)
            else:
                output = InferOutput(name, [len(best)], "BYTES", texts[best].tolist())
            outputs.append(output)
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),
        model_name=model_name,
        infer_outputs=outputs,
        use_binary_outputs=request.from_grpc,
    )


@functools.lru_cache(maxsize=8)
def _class_labels(classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The class labels as text and as BYTES elements, to pick by index: built once per model,
    not on every request."""
    return np.array(classes, dtype=object), tensors.encode_bytes_table(list(classes))


def _output(name: str, datatype: str, values: np.ndarray, binary: bool) -> InferOutput:
    if not binary:
        return InferOutput(name, list(values.shape), datatype, np.ascontiguousarray(values).ravel())
    output = InferOutput(name, list(values.shape), datatype)
    output._raw_data = tensors.encode_numeric(values, datatype)  # KServe's field for a tensor's bytes
    return output


def _chosen_outputs(request: InferRequest, names: list[str]) -> dict[str, bool]:
    """Output name -> whether it goes back as a binary tensor, for the outputs the request wants."""
    parameters = {} if request.from_grpc else (request.parameters or {})
    default = request.from_grpc or parameters.get("binary_data_output") is True
    if not request.request_outputs:
        return dict.fromkeys(names, default)
    chosen = {}
    for output in request.request_outputs:
        if output.name not in names:
            raise InvalidInput(f"output {output.name!r} is not one of this model's outputs {names}.")
        binary = (output.parameters or {}).get("binary_data", default)
        chosen[output.name] = request.from_grpc or binary is True
    return chosen


def v2_input_types(preprocessor: Preprocessor) -> list[dict[str, Any]]:
    """The inputs `/v2/models/<name>` advertises: one per feature column."""
    numeric = [{"name": c["name"], "datatype": "FP64", "shape": [-1]} for c in preprocessor.numeric]
    categorical = [{"name": c["name"], "datatype": "BYTES", "shape": [-1]} for c in preprocessor.categorical]
    return numeric + categorical


def v2_output_types(preprocessor: Preprocessor) -> list[dict[str, Any]]:
    if preprocessor.task == "regression":
        return [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
    return [
        {"name": "predicted_class", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(preprocessor.classes)]},
    ]
