"""Drift per feature on the real flights table: a random sample is stable, one month is not."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlworkloads.data.drift import drift_markdown, feature_drift
from mlworkloads.data.errors import DataError

FEATURES = ["month", "dep_delay", "distance", "carrier", "origin", "tailnum"]


@pytest.fixture(scope="module")
def halves(flights_table):
    order = np.random.default_rng(5).permutation(flights_table.num_rows)
    half = flights_table.num_rows // 2
    return flights_table.take(pa.array(order[:half])), flights_table.take(pa.array(order[half:]))


def test_a_random_sample_of_the_same_table_is_stable_everywhere(halves):
    reference, live = halves
    drifts = feature_drift(live.slice(0, 20_000), reference, FEATURES)
    assert [d.name for d in drifts] == FEATURES
    assert all(d.verdict == "stable" for d in drifts), [(d.name, d.psi) for d in drifts]
    assert {d.kind for d in drifts} == {"numeric", "categorical"}


def test_one_month_of_flights_is_shifted_in_month_and_not_in_distance(halves):
    reference, live = halves
    december = live.filter(pc.equal(live["month"], 12))
    drifts = {d.name: d for d in feature_drift(december, reference, FEATURES)}
    assert drifts["month"].verdict == "shifted" and drifts["month"].psi > 1.0
    assert drifts["distance"].verdict == "stable"
    report = drift_markdown(list(drifts.values()), "train split")
    assert report.splitlines()[6].startswith("| `month` | numeric |")  # the most shifted first


def test_unseen_categories_and_nulls_are_counted():
    reference = pa.table({"origin": ["JFK", "LGA", "EWR", "JFK"], "delay": [1.0, 2.0, 3.0, 4.0]})
    live = pa.table({"origin": ["JFK", "SFO", None, "SFO"], "delay": [1.0, None, 100.0, 2.0]})
    drifts = {d.name: d for d in feature_drift(live, reference)}
    assert drifts["origin"].unseen_share == 0.5 and drifts["origin"].live_null_share == 0.25
    assert drifts["delay"].unseen_share == pytest.approx(1 / 3) and drifts["delay"].live_null_share == 0.25
    assert drifts["origin"].verdict == "shifted"


def test_a_missing_column_is_refused_by_name():
    with pytest.raises(DataError, match="column 'origin' is not in the live table"):
        feature_drift(pa.table({"x": [1]}), pa.table({"origin": ["JFK"]}), ["origin"])
