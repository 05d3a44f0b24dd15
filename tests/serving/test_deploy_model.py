"""deploy_model on the REAL test cluster: any model, served by KServe's own runtime for its format
(KServe's scikit-learn server, from the KServe module) or by a custom predictor command, promoted
only once it answers the team's examples, rolled back otherwise.

The step runs in a pod as `pipeline-runner` with exactly the shipped Roles (support/cluster/deployer.py).
"""

from __future__ import annotations

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mlworkloads.images import PREDICTOR_IMAGE

pytestmark = pytest.mark.e2e

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
ROWS = [0, 60, 120, 70, 83]  # one of each class, and two a depth-1 tree gets wrong


def _sklearn_model(tmp_path, name, estimator) -> tuple[str, list[int]]:
    """A team's scikit-learn model as KServe's runtime loads it (`model.joblib`); its predictions on ROWS."""
    directory = tmp_path / name
    directory.mkdir()
    fitted = estimator.fit(IRIS_X, IRIS_Y)
    joblib.dump(fitted, directory / "model.joblib")
    return str(directory), fitted.predict(IRIS_X[ROWS]).tolist()


def _v1_example(predicted: list[int]) -> dict:
    return {"request": {"instances": IRIS_X[ROWS].tolist()}, "expected": {"predictions": predicted}}


def test_a_scikit_learn_model_is_served_by_kserves_runtime_then_canary_updated_and_verified(deployer, tmp_path):
    first, first_predicted = _sklearn_model(tmp_path, "logistic", LogisticRegression(max_iter=500))
    done = deployer.deploy_model(first, [_v1_example(first_predicted)], name="iris", model_format="sklearn")
    assert done.phase == "Succeeded", done.log
    model = done.manifest["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "sklearn"} and model["storageUri"] == first
    assert "containers" not in done.manifest["spec"]["predictor"]
    with deployer.client("iris") as http:  # as users reach it: through the Ingress
        answer = http.post("/v1/models/iris:predict", json={"instances": IRIS_X[ROWS].tolist()})
    assert answer.status_code == 200 and answer.json() == {"predictions": first_predicted}

    second, second_predicted = _sklearn_model(tmp_path, "stump", DecisionTreeClassifier(max_depth=1, random_state=0))
    assert second_predicted != first_predicted  # the update is visible in the answers
    v2 = {
        "request": {"inputs": [{"name": "x", "shape": [len(ROWS), 4], "datatype": "FP64",
                                "data": IRIS_X[ROWS].ravel().tolist()}]},
        "expected": {"model_name": "iris", "outputs": [{"datatype": "INT64", "data": second_predicted}]},
    }  # fmt: skip
    done = deployer.deploy_model(second, [v2], name="iris", protocol="v2", model_format="sklearn")
    assert done.phase == "Succeeded", done.log
    assert "canary verified: 1 rows answered as expected" in done.log
    assert "promoted the canary" in done.log
    with deployer.client("iris") as http:
        answer = http.post("/v1/models/iris:predict", json={"instances": IRIS_X[ROWS].tolist()})
    assert answer.json() == {"predictions": second_predicted}


def test_a_canary_that_answers_otherwise_is_rolled_back_naming_the_difference(deployer, tmp_path):
    first, first_predicted = _sklearn_model(tmp_path, "logistic", LogisticRegression(max_iter=500))
    assert deployer.deploy_model(first, [_v1_example(first_predicted)], name="iris", model_format="sklearn").phase == (
        "Succeeded"
    )
    second, second_predicted = _sklearn_model(tmp_path, "stump", DecisionTreeClassifier(max_depth=1, random_state=0))
    # The team expects the old answers from the new model: it answers otherwise, and is not promoted.
    done = deployer.deploy_model(second, [_v1_example(first_predicted)], name="iris", model_format="sklearn")
    assert done.phase == "Failed"
    wrong = next(i for i, (a, b) in enumerate(zip(first_predicted, second_predicted, strict=True)) if a != b)
    assert f".predictions[{wrong}]: expected {first_predicted[wrong]}, got {second_predicted[wrong]}" in done.log
    assert "was rolled back" in done.log
    service = deployer.service("iris")
    assert "canary" not in service["spec"] and service["spec"]["predictor"]["model"]["storageUri"] == first
    with deployer.client("iris") as http:
        answer = http.post("/v1/models/iris:predict", json={"instances": IRIS_X[ROWS].tolist()})
    assert answer.json() == {"predictions": first_predicted}


def test_a_custom_predictor_command_serves_the_model_it_is_given(deployer, sample_model, sample_features):
    import pyarrow.parquet as pq

    from mlworkloads.training.evaluation import evaluate
    from mlworkloads.training.export import load

    model = load(sample_model)
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 3)
    instances = [{c: rows[c][i].as_py() for c in model.preprocessor.feature_columns} for i in range(rows.num_rows)]
    classes = [str(c) for c in evaluate(model, rows).predictions["predicted_class"].to_pylist()]
    example = {
        "request": {"instances": instances},
        "expected": {"predictions": [{"class": c == "True"} for c in classes]},
    }
    done = deployer.deploy_model(
        sample_model, [example], name="own-server", image=PREDICTOR_IMAGE,
        command=["python", "-m", "mlworkloads.serving"],
        args=["--model_name", "own-server", "--model_dir", "/mnt/models", "--http_port", "8080"],
    )  # fmt: skip
    assert done.phase == "Succeeded", done.log
    (container,) = done.manifest["spec"]["predictor"]["containers"]
    assert container["command"] == ["python", "-m", "mlworkloads.serving"] and container["args"][1] == "own-server"


@pytest.mark.parametrize(
    ("examples", "settings", "message"),
    [
        ([], {"model_format": "sklearn"}, "verify_examples must be a non-empty list"),
        ([{"request": {}}], {"model_format": "sklearn"}, 'verify_examples[0] must be an object with exactly "request"'),
        ([{"request": {}, "expected": {}}], {"model_format": "sklearn", "command": ["serve"]}, "Set one or the other"),
        ([{"request": {}, "expected": {}}], {}, "image is empty: a container predictor needs an image"),
    ],
    ids=["no-examples", "no-expected", "format-and-command", "no-image"],
)
def test_bad_settings_fail_the_step_before_anything_is_created(deployer, tmp_path, examples, settings, message):
    done = deployer.deploy_model(str(tmp_path), examples, name="iris", **settings)
    assert done.phase == "Failed" and message in done.log
    assert deployer.cluster.objects("inferenceservices", deployer.namespace) == []
