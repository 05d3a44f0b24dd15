import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlworkloads.data.errors import DataError
from mlworkloads.data.split import split_table


def _table(n=1000, positive_share=0.2):
    labels = np.arange(n) < n * positive_share
    return pa.table({"x": np.arange(n), "y": labels})


def test_split_is_deterministic_for_a_seed_and_differs_across_seeds():
    a = split_table(_table(), "y", seed=1)
    b = split_table(_table(), "y", seed=1)
    c = split_table(_table(), "y", seed=2)
    assert a["test"]["x"].to_pylist() == b["test"]["x"].to_pylist()
    assert a["test"]["x"].to_pylist() != c["test"]["x"].to_pylist()


def test_split_partitions_every_row_once_in_the_asked_proportions():
    parts = split_table(_table(), "y", validation_fraction=0.2, test_fraction=0.1, seed=0)
    rows = sorted(sum((p["x"].to_pylist() for p in parts.values()), []))
    assert rows == list(range(1000))
    assert (parts["train"].num_rows, parts["validation"].num_rows, parts["test"].num_rows) == (700, 200, 100)


def test_split_stratifies_on_the_label():
    parts = split_table(_table(positive_share=0.1), "y", seed=3)
    for part in parts.values():
        assert pc.mean(pc.cast(part["y"], pa.float64())).as_py() == pytest.approx(0.1)


def test_split_of_real_flights_keeps_the_late_share(flights_sample):
    parts = split_table(flights_sample, "late", seed=0)
    shares = [pc.mean(pc.cast(p["late"], pa.float64())).as_py() for p in parts.values()]
    assert max(shares) - min(shares) < 0.01


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (_table(10), {"validation_fraction": 0.01}, "the validation split would be empty"),
        (_table(), {"validation_fraction": 0.5, "test_fraction": 0.5}, "leaves no rows for train"),
        (_table(), {"test_fraction": 0}, "test_fraction=0"),
        (_table(positive_share=0), {}, "has a single class [False]"),
        (_table(), {"label_column": "z"}, "label_column 'z' is not in the table"),
    ],
)
def test_split_refuses_what_would_leave_a_split_or_class_empty(table, kwargs, message):
    kwargs = {"label_column": "y", **kwargs}
    with pytest.raises(DataError) as err:
        split_table(table, **kwargs)
    assert message in str(err.value)
