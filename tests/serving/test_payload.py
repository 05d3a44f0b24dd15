"""serving/payload.py: request bodies to feature columns and back, every refusal an InvalidInput naming the field.

The predictor tests send the same payloads over HTTP (tests/serving/test_predictor.py); these call
the functions directly, one case per id, on a preprocessor fitted on a small table.
"""

import functools

import numpy as np
import pyarrow as pa
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from mlworkloads.data import preprocessor as pre
from mlworkloads.data.preprocessor import SMALL_BATCH
from mlworkloads.serving import payload

MAX_BATCH = 64


@functools.cache
def _fitted() -> pre.Preprocessor:
    table = pa.table(
        {
            "distance": [100.0, 200.0, 300.0, 400.0, None, 250.0, 120.0, 80.0],
            "carrier": ["UA", "UA", "AA", "DL", None, "AA", "DL", "UA"],
            "late": ["yes", "no", "no", "yes", "no", "yes", "no", "no"],
        }
    )
    return pre.fit(table, pre.PreprocessorOptions(label_column="late"))


@pytest.fixture
def fitted() -> pre.Preprocessor:
    return _fitted()


def _instances(n: int) -> list[dict]:
    return [{"distance": 100.0 + i, "carrier": ["UA", "AA", None][i % 3]} for i in range(n)]


@pytest.mark.parametrize("rows", [1, SMALL_BATCH, SMALL_BATCH + 1, MAX_BATCH], ids=lambda n: f"{n}-rows")
def test_v1_instances_become_one_column_per_feature_in_either_path(fitted, rows):
    instances = _instances(rows)
    columns = payload.v1_columns({"instances": instances}, fitted, MAX_BATCH)
    assert list(columns) == fitted.feature_columns
    for name, values in columns.items():
        as_list = values if isinstance(values, list) else values.to_pylist()
        assert as_list == [instance[name] for instance in instances]
    # The list path (a few rows) and the Arrow path transform alike.
    features = fitted.transform(columns)
    again = fitted.transform({name: pa.array(v) for name, v in columns.items()})
    assert np.array_equal(features.numeric, again.numeric)
    assert np.array_equal(features.categorical, again.categorical)


def _bad_v1_cases():
    good = {"distance": 1.0, "carrier": "UA"}
    for size, path in ((2, "lists"), (SMALL_BATCH + 2, "arrow")):
        rows = [dict(good) for _ in range(size)]
        yield pytest.param(
            {"instances": [*rows[:-1], {"carrier": "UA"}]},
            f"instances[{size - 1}] is missing feature 'distance'",
            id=f"missing-{path}",
        )
        yield pytest.param(
            {"instances": [*rows[:-1], {**good, "distance": "far"}]},
            "feature 'distance' mixes types across instances",
            id=f"mixed-{path}",
        )
        yield pytest.param(
            {"instances": [*rows[:-1], {**good, "distance": float("inf")}]},
            f"feature 'distance' in instances[{size - 1}] is inf: numbers must be finite",
            id=f"infinite-{path}",
        )
        yield pytest.param(
            {"instances": [*rows[:-1], {**good, "distance": 2**64}]},
            f"too large for 64 bits (instances[{size - 1}])",
            id=f"too-large-{path}",
        )
        yield pytest.param(
            {"instances": [*rows[:-1], {**good, "carrier": ["UA"]}]},
            f"feature 'carrier' in instances[{size - 1}] must be a number, text or null; got list",
            id=f"nested-{path}",
        )
        yield pytest.param(
            {"instances": [*rows[:-1], "UA"]}, f"instances[{size - 1}] must be an object", id=f"not-object-{path}"
        )
    yield pytest.param([good], 'expected a JSON object with "instances"', id="bare-list")
    yield pytest.param({"inputs": []}, 'expected a JSON object with "instances"', id="no-instances")
    yield pytest.param({"instances": []}, '"instances" must be a non-empty list', id="empty")
    yield pytest.param({"instances": good}, '"instances" must be a non-empty list', id="object")
    yield pytest.param(
        {"instances": [good] * (MAX_BATCH + 1)}, f"has {MAX_BATCH + 1} rows; the maximum batch is {MAX_BATCH}", id="big"
    )


@pytest.mark.parametrize(("body", "message"), list(_bad_v1_cases()))
def test_a_bad_v1_body_is_invalid_input_naming_the_row_and_field(fitted, body, message):
    with pytest.raises(InvalidInput) as err:
        payload.v1_columns(body, fitted, MAX_BATCH)
    assert message in str(err.value)


def _v2(*inputs: InferInput) -> InferRequest:
    return InferRequest(model_name="flights", infer_inputs=list(inputs))


def test_v2_one_input_per_feature_in_either_shape(fitted):
    request = _v2(
        InferInput("distance", [3, 1], "FP64", [1.0, 2.0, 3.0]),
        InferInput("carrier", [3], "BYTES", ["UA", "AA", "ZZ"]),
    )
    columns = payload.v2_features(request, fitted, MAX_BATCH)
    assert np.asarray(columns["distance"]).tolist() == [1.0, 2.0, 3.0]
    assert columns["carrier"].to_pylist() == ["UA", "AA", "ZZ"]


def test_v2_preprocessed_features_are_taken_as_they_are(fitted):
    width = fitted.numeric_width + len(fitted.categorical)
    row = [0.5] * fitted.numeric_width + [1.0]
    features = payload.v2_features(_v2(InferInput("features", [2, width], "FP32", row * 2)), fitted, MAX_BATCH)
    assert features.numeric.dtype == np.float32 and features.numeric.shape == (2, fitted.numeric_width)
    assert features.categorical.tolist() == [[1], [1]]


def _bad_v2_cases():
    fitted = _fitted()
    distance = InferInput("distance", [2], "FP64", [1.0, 2.0])
    carrier = InferInput("carrier", [2], "BYTES", ["UA", "AA"])
    width = fitted.numeric_width + 1
    numeric_width = fitted.numeric_width
    cardinality = fitted.cardinalities[0]

    def features(values, datatype="FP32", rows=1):
        return InferInput("features", [rows, len(values) // rows], datatype, values)

    cases = [
        ("no-inputs", [], 'the request has no "inputs"'),
        ("missing", [carrier], "inputs ['distance'] are missing"),
        ("numeric-as-text", [InferInput("distance", [2], "BYTES", ["1", "2"]), carrier], "input 'distance' is numeric"),
        ("matrix", [InferInput("distance", [1, 2], "FP64", [1.0, 2.0]), carrier], "shape [batch] or [batch, 1]"),
        ("rows-differ", [distance, InferInput("carrier", [1], "BYTES", ["UA"])], "input 'carrier' has 1 rows"),
        ("infinity", [InferInput("distance", [2], "FP64", [1.0, float("inf")]), carrier], "holds infinity"),
        ("undecodable", [InferInput("distance", [3], "FP64", [1.0, 2.0]), carrier], "cannot be decoded"),
        ("zero-rows", [InferInput("distance", [0], "FP64", []), InferInput("carrier", [0], "BYTES", [])], "no rows"),
        (
            "big",
            [InferInput("distance", [MAX_BATCH + 1], "FP64", [1.0] * (MAX_BATCH + 1))]
            + [InferInput("carrier", [MAX_BATCH + 1], "BYTES", ["UA"] * (MAX_BATCH + 1))],
            f"{MAX_BATCH + 1} rows; the maximum batch is {MAX_BATCH}",
        ),
        ("features-int", [features([1] * width, "INT32")], 'input "features" must be FP32, not INT32'),
        ("features-width", [features([1.0] * (width + 1))], f"must have shape [batch, {width}]"),
        ("features-inf", [features([float("inf")] * width)], 'input "features" holds NaN or infinity'),
        (
            "features-fraction",
            [features([0.0] * numeric_width + [0.5])],
            "are category indices and must be whole numbers",
        ),
        (
            "features-out-of-range",
            [features([0.0] * numeric_width + [float(cardinality)])],
            f"in [0, cardinality) for cardinalities [{cardinality}]",
        ),
    ]
    return [pytest.param(inputs, message, id=name) for name, inputs, message in cases]


@pytest.mark.parametrize(("inputs", "message"), _bad_v2_cases())
def test_a_bad_v2_request_is_invalid_input_naming_the_input(fitted, inputs, message):
    with pytest.raises(InvalidInput) as err:
        payload.v2_features(_v2(*inputs), fitted, MAX_BATCH)
    assert message in str(err.value)


def test_responses_carry_the_class_and_named_probabilities(fitted):
    scores = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    best = scores.argmax(axis=1)
    v1 = payload.v1_response(scores, best, fitted)
    names = [str(c) for c in fitted.classes]
    assert [p["class"] for p in v1["predictions"]] == [fitted.classes[1], fitted.classes[0]]
    assert v1["predictions"][0]["probabilities"] == pytest.approx(dict(zip(names, [0.2, 0.8], strict=True)))
    v2 = payload.v2_response(scores, best, fitted, "flights", InferRequest("flights", [], request_id="request-1"))
    outputs = {o.name: o for o in v2.outputs}
    assert v2.id == "request-1" and v2.model_name == "flights"
    assert outputs["predicted_class"].data == [names[1], names[0]] and outputs["predicted_class"].datatype == "BYTES"
    assert outputs["probabilities"].shape == [2, 2] and outputs["probabilities"].data.tolist() == pytest.approx(
        [0.2, 0.8, 0.9, 0.1]
    )
    advertised = {o["name"]: o for o in payload.v2_output_types(fitted)}
    assert {name: (o.datatype, len(o.shape)) for name, o in outputs.items()} == {
        name: (o["datatype"], len(o["shape"])) for name, o in advertised.items()
    }


def test_a_regression_response_is_the_value_per_row():
    table = pa.table({"distance": [1.0, 2.0, 3.0, 4.0], "minutes": [10.0, 20.0, 30.0, 40.0]})
    regression = pre.fit(table, pre.PreprocessorOptions(label_column="minutes", task="regression"))
    scores = np.array([12.5, 31.0], dtype=np.float32)
    assert payload.v1_response(scores, None, regression) == {"predictions": [12.5, 31.0]}
    (output,) = payload.v2_response(scores, None, regression, "minutes", InferRequest("minutes", [])).outputs
    assert (output.name, output.datatype, output.data.tolist()) == ("prediction", "FP32", [12.5, 31.0])
    assert payload.v2_output_types(regression) == [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]


def test_metadata_advertises_one_input_per_feature_with_its_type(fitted):
    assert payload.v2_input_types(fitted) == [
        {"name": "distance", "datatype": "FP64", "shape": [-1]},
        {"name": "carrier", "datatype": "BYTES", "shape": [-1]},
    ]


def test_a_v2_nan_is_a_missing_value_as_v1s_null(fitted):
    carrier = InferInput("carrier", [2], "BYTES", ["UA", "AA"])
    v2 = payload.v2_features(_v2(InferInput("distance", [2], "FP64", [float("nan"), 2.0]), carrier), fitted, MAX_BATCH)
    v1 = payload.v1_columns(
        {"instances": [{"distance": None, "carrier": "UA"}, {"distance": 2.0, "carrier": "AA"}]}, fitted, MAX_BATCH
    )
    features = fitted.transform(v2).numeric
    assert features[:, 1].tolist() == [1.0, 0.0]  # the missing flag, as for V1's null
    np.testing.assert_array_equal(features, fitted.transform(v1).numeric)
