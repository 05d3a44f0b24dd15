import numpy as np
import pyarrow as pa
import pytest

from mlworkloads.data import preprocessor as pre
from mlworkloads.data.errors import DataError


def _train():
    return pa.table(
        {
            "distance": [100.0, 200.0, None, 400.0],
            "carrier": ["UA", "UA", "AA", None],
            "tail": [f"N{i}" for i in range(4)],
            "label": ["on_time", "late", "on_time", "late"],
        }
    )


def _fit(table=None, **options):
    return pre.fit(table or _train(), pre.PreprocessorOptions(label_column="label", **options))


def test_fit_learns_median_imputation_standardisation_and_vocabulary():
    fitted = _fit()
    (numeric,) = fitted.numeric
    assert numeric["median"] == 200.0
    imputed = np.array([100, 200, 200, 400.0])
    assert numeric["mean"] == pytest.approx(imputed.mean())
    assert numeric["std"] == pytest.approx(imputed.std())
    assert fitted.to_dict()["categorical"][0] == {"name": "carrier", "vocabulary": ["UA", "AA"]}
    assert fitted.task == "binary" and fitted.classes == ["late", "on_time"]


def test_transform_imputes_flags_missing_and_sends_unknown_categories_to_bucket_zero():
    fitted = _fit()
    features = fitted.transform(pa.table({"distance": [None, 200.0], "carrier": ["ZZ", "AA"], "tail": ["x", "y"]}))
    spec = fitted.numeric[0]
    assert features.numeric[:, 0] == pytest.approx([(200 - spec["mean"]) / spec["std"]] * 2)
    assert features.numeric[:, 1].tolist() == [1.0, 0.0]
    assert features.categorical[:, 0].tolist() == [0, 2]


@pytest.mark.parametrize("categorical", [[], ["flight"]])
def test_transform_of_a_batch_equals_transform_of_each_row(flights_sample, categorical):
    # Batches of more than SMALL_BATCH rows go through Arrow kernels, single rows through lists.
    fitted = pre.fit(
        flights_sample.slice(1000), pre.PreprocessorOptions(label_column="late", categorical_columns=categorical)
    )
    assert pre.SMALL_BATCH < 200
    batch = fitted.transform(flights_sample.slice(0, 200))
    rows = [fitted.transform(flights_sample.slice(i, 1)) for i in range(200)]
    assert np.array_equal(batch.numeric, np.vstack([r.numeric for r in rows]))
    assert np.array_equal(batch.categorical, np.vstack([r.categorical for r in rows]))


def test_fitting_and_transforming_columns_in_threads_changes_nothing(flights_sample, monkeypatch):
    options = pre.PreprocessorOptions(label_column="late", categorical_columns=["flight"])
    bad = flights_sample.set_column(flights_sample.column_names.index("distance"), "distance",
                                    pa.array(["far"] * flights_sample.num_rows))  # fmt: skip
    results = {}
    for parallel_rows in (10**9, 1):  # never in threads, then always
        monkeypatch.setattr(pre, "PARALLEL_ROWS", parallel_rows)
        fitted = pre.fit(flights_sample, options)
        with pytest.raises(DataError) as err:
            fitted.transform(bad)
        results[parallel_rows] = (fitted.to_dict(), fitted.transform(flights_sample), str(err.value))
    (spec, features, error), (spec_threads, features_threads, error_threads) = results.values()
    assert spec == spec_threads and error == error_threads and "'distance'" in error
    assert np.array_equal(features.numeric, features_threads.numeric)
    assert np.array_equal(features.categorical, features_threads.categorical)


@pytest.mark.parametrize("categorical", [[], ["flight"]])
def test_python_lists_transform_exactly_as_arrow_columns(flights_sample, categorical):
    fitted = pre.fit(
        flights_sample.slice(1000), pre.PreprocessorOptions(label_column="late", categorical_columns=categorical)
    )
    rows = flights_sample.slice(0, pre.SMALL_BATCH)
    as_lists = {name: rows[name].to_pylist() for name in fitted.feature_columns}
    as_lists["carrier"][0] = "never-seen"  # the out-of-vocabulary bucket
    as_lists["carrier"][1] = None
    as_lists["distance"][2] = None  # imputed
    as_arrow = {name: pa.array(values) for name, values in as_lists.items()}
    for batch in (1, 3, pre.SMALL_BATCH):
        lists = fitted.transform({k: v[:batch] for k, v in as_lists.items()})
        arrow = fitted.transform({k: v[:batch] for k, v in as_arrow.items()})
        assert np.array_equal(lists.numeric, arrow.numeric)
        assert np.array_equal(lists.categorical, arrow.categorical)


def test_numpy_arrays_transform_as_arrow_columns_with_nan_as_the_missing_value(flights_sample):
    # What the predictor hands over for a V2 numeric tensor: it has no null, NaN is missing.
    fitted = pre.fit(flights_sample.slice(1000), pre.PreprocessorOptions(label_column="late"))
    rows = flights_sample.slice(0, 300)
    as_arrow = {name: rows[name] for name in fitted.feature_columns}
    holes = rows["dep_delay"].to_pylist()
    holes[0] = holes[7] = holes[299] = None
    as_arrow["dep_delay"] = pa.array(holes)
    as_numpy = dict(as_arrow)
    for spec in fitted.numeric:
        as_numpy[spec["name"]] = as_arrow[spec["name"]].to_numpy(zero_copy_only=False).astype(np.float64)
    assert np.isnan(as_numpy["dep_delay"]).sum() == 3
    as_numpy["month"] = rows["month"].to_numpy()  # int64: a number as it is
    for batch in (1, pre.SMALL_BATCH, 300):
        arrow = fitted.transform({k: v[:batch] for k, v in as_arrow.items()})
        numpy = fitted.transform({k: v[:batch] for k, v in as_numpy.items()})
        assert np.array_equal(arrow.numeric, numpy.numeric) and np.array_equal(arrow.categorical, numpy.categorical)
    for batch in (1, 300):
        for bad, message in [
            (np.array([np.inf] * batch), "feature 'distance' row 1 is inf: numbers must be finite"),
            (np.array(["far"] * batch), "feature 'distance' must be a number, but received"),
        ]:
            with pytest.raises(DataError, match=message):
                fitted.transform({**{k: v[:batch] for k, v in as_numpy.items()}, "distance": bad})


def test_text_columns_looked_up_together_get_each_their_own_vocabularys_codes(monkeypatch):
    # Request-sized batches look every text column up in one call against the union of the
    # vocabularies: a value in two vocabularies ("JFK" below) must still get each column's code.
    n = pre.SMALL_BATCH * 3
    train = pa.table(
        {
            "origin": (["JFK"] * 5 + ["LGA"] * 3 + ["EWR"] * 2) * 4,
            "dest": (["LAX"] * 5 + ["JFK"] * 3 + ["ORD"] * 2) * 4,
            "gate": ([1] * 6 + [2] * 4) * 4,  # whole numbers: looked up as numbers
            "late": [True, False] * 20,
        }
    )
    fitted = pre.fit(
        train, pre.PreprocessorOptions(label_column="late", categorical_columns=["origin", "dest", "gate"])
    )
    vocabularies = [c["vocabulary"] for c in fitted.to_dict()["categorical"]]
    assert vocabularies == [["JFK", "LGA", "EWR"], ["LAX", "JFK", "ORD"], ["1", "2"]]
    origin = (["JFK", "LGA", None, "SFO", "EWR", "LAX"] * n)[:n]
    dest = (["JFK", "ORD", "LAX", None, "LGA", "BOS"] * n)[:n]
    gates = ([1, 2, 3, None] * n)[:n]
    inputs = [
        {"origin": pa.array(origin), "dest": pa.array(dest), "gate": pa.array(gates)},
        {  # chunked, dictionary-encoded and large text, and numbers as text
            "origin": pa.chunked_array([pa.array(origin[:7]), pa.array(origin[7:])]),
            "dest": pa.array(dest).dictionary_encode(),
            "gate": pa.array([None if g is None else str(g) for g in gates], type=pa.large_string()),
        },
        pa.table({"origin": origin, "dest": dest, "gate": pa.array(gates, type=pa.float64())}),
    ]
    for columns in inputs:
        joined = fitted.transform(columns).categorical
        # Column by column, each in its own vocabulary: in this thread, and in threads.
        for setting, value in [("JOINED_LOOKUP_ROWS", 0), ("PARALLEL_ROWS", 1)]:
            with monkeypatch.context() as patch:
                patch.setattr(pre, setting, value)
                assert np.array_equal(fitted.transform(columns).categorical, joined)
    assert joined[:6].tolist() == [[1, 2, 1], [2, 3, 2], [0, 1, 0], [0, 0, 0], [3, 0, 1], [0, 0, 2]]


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("distance", [1.0, "far"], "feature 'distance' must be a number, but received string values"),
        ("distance", [1.0, float("inf")], "feature 'distance' row 2 is inf: numbers must be finite"),
        ("distance", [1, 2**1100], "feature 'distance' holds a number too large"),
    ],
)
def test_python_lists_are_refused_like_arrow_columns(flights_sample, column, values, message):
    fitted = pre.fit(flights_sample, pre.PreprocessorOptions(label_column="late"))
    columns = {name: flights_sample[name].to_pylist()[: len(values)] for name in fitted.feature_columns}
    columns[column] = values
    with pytest.raises(DataError, match=message):
        fitted.transform(columns)


def test_transform_takes_plain_arrow_columns_as_the_predictor_sends_them():
    fitted = _fit()
    features = fitted.transform(
        {"distance": pa.array([1, None]), "carrier": pa.array(["UA", None]), "tail": pa.array(["N1", "N1"])}
    )
    assert features.numeric.shape == (2, 2) and features.categorical.tolist() == [[1, 2], [0, 2]]


def test_json_round_trip_gives_the_same_transform(flights_sample):
    fitted = pre.fit(flights_sample, pre.PreprocessorOptions(label_column="late", categorical_columns=["flight"]))
    again = pre.Preprocessor.from_json(fitted.to_json())
    a, b = fitted.transform(flights_sample), again.transform(flights_sample)
    assert np.array_equal(a.numeric, b.numeric) and np.array_equal(a.categorical, b.categorical)


def test_identifier_like_and_constant_columns_are_excluded_with_a_reason():
    n = 300
    table = pa.table(
        {
            "id": [f"row-{i}" for i in range(n)],
            "constant": [1] * n,
            "x": np.arange(n, dtype=float),
            "label": [i % 2 == 0 for i in range(n)],
        }
    )
    fitted = _fit(table)
    reasons = {e["name"]: e["reason"] for e in fitted.excluded}
    assert reasons["id"].startswith("identifier-like: 300 distinct values")
    assert reasons["constant"].startswith("constant")
    assert fitted.feature_columns == ["x"]


def test_regression_keeps_the_target_numeric():
    table = pa.table({"x": np.arange(50.0), "y": np.arange(50.0) * 1.5})
    fitted = pre.fit(table, pre.PreprocessorOptions(label_column="y"))
    assert fitted.task == "regression" and fitted.classes is None
    assert fitted.encode_labels(table["y"]).dtype == np.float32


def test_overrides_force_roles():
    table = pa.table({"code": [1, 2, 3, 1] * 10, "label": [True, False] * 20})
    fitted = _fit(table, categorical_columns=["code"])
    assert [c["name"] for c in fitted.categorical] == ["code"]
    assert fitted.transform(pa.table({"code": [2, 9]})).categorical[:, 0].tolist() == [2, 0]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"distance": pa.array(["far"]), "carrier": pa.array(["UA"])}, "feature 'distance' must be a number"),
        (
            {"distance": pa.array([float("nan")]), "carrier": pa.array(["UA"])},
            "feature 'distance' row 1 is nan",
        ),
        ({"distance": pa.array([float("inf")]), "carrier": pa.array(["UA"])}, "row 1 is inf"),
        ({"carrier": pa.array(["UA"])}, "feature 'distance' is missing"),
        (
            {"distance": pa.array([1.0]), "carrier": pa.array([[1]])},
            "feature 'carrier' must be text or a number",
        ),
    ],
)
@pytest.mark.parametrize("rows", [1, 40])
def test_transform_refuses_bad_features_naming_them(columns, message, rows):
    # Both the small-batch and the Arrow path refuse the same input with the same message.
    columns = {name: pa.concat_arrays([array] * rows) for name, array in columns.items()}
    with pytest.raises(DataError) as err:
        _fit().transform(columns)
    assert message in str(err.value)


@pytest.mark.parametrize("rows", [1, 40])
def test_a_whole_number_past_float_precision_is_still_a_number(rows):
    # 2**60 has no exact float64; both paths round it as float() does (Arrow's safe cast refused it).
    fitted = _fit()
    columns = {"distance": pa.array([2**60] * rows), "carrier": pa.array(["UA"] * rows), "tail": pa.array(["x"] * rows)}
    features = fitted.transform(columns)
    spec = fitted.numeric[0]
    assert features.numeric[:, 0].tolist() == [np.float32((float(2**60) - spec["mean"]) / spec["std"])] * rows


def test_fit_refuses_an_entirely_null_categorical_column():
    table = pa.table({"x": [1.0, 2.0, 3.0], "c": pa.array([None, None, None], pa.string()), "label": [1, 0, 1]})
    with pytest.raises(DataError, match="column 'c' is entirely null in train"):
        _fit(table)


def test_fit_refuses_a_label_with_one_class():
    with pytest.raises(DataError, match="has one class"):
        _fit(pa.table({"x": [1.0, 2.0], "label": ["a", "a"]}))


def test_unseen_label_in_another_split_is_named():
    with pytest.raises(DataError, match=r"value\(s\) \['maybe'\] not seen in train"):
        _fit().encode_labels(pa.array(["late", "maybe"]))


def test_loading_refuses_text_that_is_not_json():
    with pytest.raises(DataError, match="not valid JSON"):
        pre.Preprocessor.from_json("{nope", source="model/preprocessor.json")
