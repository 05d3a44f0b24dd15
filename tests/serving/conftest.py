"""Fixtures of the predictor's tests: held-out rows and what the model predicts for them offline."""

import pyarrow.parquet as pq
import pytest

from mlworkloads.training.export import load


@pytest.fixture(scope="module")
def rows(sample_features):
    """The first 32 rows of the sample's raw test split."""
    return pq.read_table(sample_features["test_raw"]).slice(0, 32)


@pytest.fixture(scope="module")
def offline(sample_model, rows):
    """`sample_model`'s probabilities for `rows`, scored in this process."""
    return load(sample_model).predict_columns(rows)
