"""Every task through the predictor in process: a few V1 rows (transformed and counted on Python
lists) and a batch (through Arrow and numpy) give the same answers and count the same metrics."""

import asyncio

import pytest
from conftest import prepare_features, train_model
from prometheus_client import REGISTRY

from mlworkloads.data.preprocessor import SMALL_BATCH
from mlworkloads.serving.predictor import TabularModel


@pytest.fixture(scope="module", params=["late", "origin", "dep_delay"], ids=["binary", "multiclass", "regression"])
def served(request, flights_sample, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"task-{request.param}")
    features = prepare_features(flights_sample.slice(0, 3000), directory / "features", label=request.param)
    model = TabularModel(f"task-{request.param}", train_model(features, directory / "model", epochs=1))
    model.load()
    columns = model.loaded.preprocessor.feature_columns
    rows = flights_sample.slice(3000, SMALL_BATCH + 8)
    return model, [{c: rows[c][i].as_py() for c in columns} for i in range(rows.num_rows)]


def _counts(model):
    """The predictor's own series for this model: predictions per outcome, and the score count."""
    counts = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.labels.get("model_name") != model.name:
                continue
            if sample.name == "mlworkloads_predictions_total":
                counts[sample.labels["predicted_class"]] = sample.value
            elif sample.name == "mlworkloads_prediction_score_count":
                counts["scores"] = sample.value
            elif sample.name == "mlworkloads_prediction_score_sum":
                counts["score_sum"] = sample.value
    return counts


def test_a_few_rows_and_a_batch_answer_and_count_alike(served):
    model, instances = served

    def predict(batch):
        return asyncio.run(model.predict({"instances": batch}))["predictions"]

    batch = predict(instances)  # more than SMALL_BATCH rows: the vectorised paths
    assert len(batch) == SMALL_BATCH + 8
    before = _counts(model)
    one_at_a_time = [p for instance in instances for p in predict([instance])]
    few = predict(instances[:3])
    after = _counts(model)
    # Equal to float32 rounding: BLAS blocks a one-row product differently from a batch's.
    assert _flat(one_at_a_time) == pytest.approx(_flat(batch), rel=1e-5, abs=1e-6)
    assert _flat(few) == pytest.approx(_flat(batch[:3]), rel=1e-5, abs=1e-6)
    if model.loaded.task != "regression":
        assert [p["class"] for p in one_at_a_time] == [p["class"] for p in batch]
    # Counted by class as the batch predicted them: every row once, the first three twice.
    grown = {key: after[key] - before.get(key, 0) for key in after}
    assert grown["scores"] == len(instances) + 3
    # The score counted: the positive class's probability (binary), the top one (multiclass), the value.
    top = {
        "binary": lambda p: list(p["probabilities"].values())[1],
        "multiclass": lambda p: max(p["probabilities"].values()),
        "regression": lambda p: p,
    }[model.loaded.task]
    assert grown["score_sum"] == pytest.approx(sum(map(top, one_at_a_time + few)), rel=1e-9)
    if model.loaded.task == "regression":
        assert isinstance(batch[0], float) and grown["value"] == len(instances) + 3
    else:
        labels = [str(p["class"]) for p in batch]
        expected = {label: labels.count(label) + labels[:3].count(label) for label in set(labels)}
        assert {k: v for k, v in grown.items() if k not in ("scores", "score_sum") and v} == expected
        assert all(str(p["class"]) == max(p["probabilities"], key=p["probabilities"].get) for p in one_at_a_time)


def _flat(predictions):
    """Each prediction's numbers in order: its value, or its probabilities."""
    return [v for p in predictions for v in ([p] if isinstance(p, float) else p["probabilities"].values())]
