"""The predictor serving gradient-boosted trees over real HTTP: the network's V1/V2 contract, 400s and metrics."""

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from mlworkloads.training.export import load


@pytest.fixture(scope="module")
def rows(sample_features):
    return pq.read_table(sample_features["test_raw"]).slice(0, 40)


@pytest.fixture(scope="module")
def trees_url(boosted_model):
    """The real KServe predictor serving the trees as "flights" on 127.0.0.1."""
    from mlworkloads.serving.local_server import local_predictor

    with local_predictor(boosted_model, "flights", max_batch_size=512) as base:
        yield base


def _instances(model_dir, rows):
    columns = load(model_dir).preprocessor.feature_columns
    return [{c: rows[c][i].as_py() for c in columns} for i in range(rows.num_rows)]


@pytest.mark.e2e
@pytest.mark.parametrize("n", [1, 40])
def test_v1_predictions_equal_the_offline_ones(trees_url, boosted_model, rows, n):
    offline = load(boosted_model).predict_columns(rows)
    response = httpx.post(
        f"{trees_url}/v1/models/flights:predict", json={"instances": _instances(boosted_model, rows)[:n]}, timeout=30
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == n
    served = np.array([p["probabilities"]["True"] for p in predictions])
    np.testing.assert_allclose(served, offline[:n, 1], atol=1e-6)


@pytest.mark.e2e
def test_v2_predictions_equal_the_offline_ones(trees_url, boosted_model, rows):
    complete = rows.drop_null()  # V2 tensors have no nulls
    preprocessor = load(boosted_model).preprocessor
    inputs = [
        {"name": c["name"], "datatype": "FP64", "shape": [complete.num_rows], "data": complete[c["name"]].to_pylist()}
        for c in preprocessor.numeric
    ]
    inputs += [
        {
            "name": c["name"],
            "datatype": "BYTES",
            "shape": [complete.num_rows],
            "data": [str(v) for v in complete[c["name"]].to_pylist()],
        }
        for c in preprocessor.categorical
    ]
    response = httpx.post(f"{trees_url}/v2/models/flights/infer", json={"inputs": inputs}, timeout=30)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(complete.num_rows, 2)
    np.testing.assert_allclose(probabilities, load(boosted_model).predict_columns(complete), atol=1e-6)


@pytest.mark.e2e
def test_bad_input_is_a_400_naming_the_field(trees_url, boosted_model, rows):
    instance = _instances(boosted_model, rows)[0]
    del instance["distance"]
    response = httpx.post(f"{trees_url}/v1/models/flights:predict", json={"instances": [instance]}, timeout=30)
    assert response.status_code == 400
    assert "distance" in response.text


@pytest.mark.e2e
def test_metrics_count_the_trees_predictions_per_class(trees_url, boosted_model, rows):
    before = httpx.get(f"{trees_url}/metrics", timeout=30).text
    response = httpx.post(
        f"{trees_url}/v1/models/flights:predict", json={"instances": _instances(boosted_model, rows)}, timeout=30
    )
    assert response.status_code == 200
    after = httpx.get(f"{trees_url}/metrics", timeout=30).text

    def total(text):
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("mlworkloads_predictions_total{") and 'model_name="flights"' in line
        )

    assert total(after) - total(before) == rows.num_rows
