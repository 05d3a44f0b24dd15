"""The predictor over real HTTP on loopback: V1, V2, three clients, and every bad input."""

import json

import httpx
import numpy as np
import pytest

from mlworkloads.training.export import load


def _instances(model_dir, rows):
    columns = load(model_dir).preprocessor.feature_columns
    return [{c: rows[c][i].as_py() for c in columns} for i in range(rows.num_rows)]


def _v1(url, body, **kwargs):
    return httpx.post(f"{url}/v1/models/flights:predict", json=body, timeout=30, **kwargs)


def _v2_inputs(model_dir, rows):
    preprocessor = load(model_dir).preprocessor
    inputs = [
        {
            "name": c["name"],
            "datatype": "FP64",
            "shape": [rows.num_rows],
            "data": [float(v) if v is not None else 0.0 for v in rows[c["name"]].to_pylist()],
        }
        for c in preprocessor.numeric
    ]
    inputs += [
        {
            "name": c["name"],
            "datatype": "BYTES",
            "shape": [rows.num_rows],
            "data": [str(v) for v in rows[c["name"]].to_pylist()],
        }
        for c in preprocessor.categorical
    ]
    return inputs


@pytest.mark.e2e
@pytest.mark.parametrize("n", [1, 16, 32])  # up to SMALL_BATCH rows as Python lists, more through Arrow
def test_v1_predictions_equal_the_offline_ones(predictor_url, sample_model, rows, offline, n):
    response = _v1(predictor_url, {"instances": _instances(sample_model, rows)[:n]})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    got = np.array([[p["probabilities"]["False"], p["probabilities"]["True"]] for p in predictions])
    np.testing.assert_allclose(got, offline[:n], atol=1e-6)
    assert [p["class"] for p in predictions] == [bool(i) for i in offline[:n].argmax(axis=1)]


@pytest.mark.e2e
def test_v2_with_one_input_per_feature_through_httpx(predictor_url, sample_model, rows, offline):
    body = {"id": "r1", "inputs": _v2_inputs(sample_model, rows)}
    response = httpx.post(f"{predictor_url}/v2/models/flights/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["probabilities"]["datatype"] == "FP32" and outputs["probabilities"]["shape"] == [32, 2]
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(32, 2)
    np.testing.assert_allclose(probabilities, offline, atol=1e-5)
    assert outputs["predicted_class"]["datatype"] == "BYTES"


@pytest.mark.e2e
def test_v2_through_kserves_own_rest_client(predictor_url, sample_model, rows, offline):
    import asyncio

    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    inputs = []
    for spec in _v2_inputs(sample_model, rows):
        item = InferInput(spec["name"], spec["shape"], spec["datatype"])
        array = np.array(spec["data"], dtype=object if spec["datatype"] == "BYTES" else np.float64)
        item.set_data_from_numpy(array, binary_data=False)
        inputs.append(item)

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            return await client.infer(
                predictor_url, InferRequest(model_name="flights", infer_inputs=inputs), model_name="flights"
            )
        finally:
            await client.close()

    response = asyncio.run(call())
    probabilities = next(o for o in response.outputs if o.name == "probabilities").as_numpy()
    np.testing.assert_allclose(probabilities.reshape(32, 2), offline, atol=1e-5)


@pytest.mark.e2e
def test_v2_through_tritons_client_a_third_party_implementation(predictor_url, sample_model, rows, offline):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(predictor_url.removeprefix("http://"))
    assert client.is_model_ready("flights")
    inputs = []
    for spec in _v2_inputs(sample_model, rows):
        item = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
        array = np.array(spec["data"], dtype=object if spec["datatype"] == "BYTES" else np.float64)
        item.set_data_from_numpy(array, binary_data=False)
        inputs.append(item)
    # Triton's client sends its JSON mode without a Content-Type; the predictor reads it as JSON.
    result = client.infer("flights", inputs, outputs=[triton.InferRequestedOutput("probabilities", binary_data=False)])
    np.testing.assert_allclose(result.as_numpy("probabilities").reshape(32, 2), offline, atol=1e-5)


@pytest.mark.e2e
def test_v2_with_one_preprocessed_fp32_tensor(predictor_url, sample_model, rows, offline):
    model = load(sample_model)
    features = model.preprocessor.transform(rows)
    tensor = np.hstack([features.numeric, features.categorical.astype(np.float32)])
    body = {
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": list(tensor.shape), "data": tensor.flatten().tolist()}
        ]
    }
    response = httpx.post(f"{predictor_url}/v2/models/flights/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    probabilities = next(o for o in response.json()["outputs"] if o["name"] == "probabilities")["data"]
    np.testing.assert_allclose(np.array(probabilities).reshape(32, 2), offline, atol=1e-5)


@pytest.mark.e2e
def test_v2_metadata_lists_the_inputs_the_model_expects(predictor_url, sample_model):
    metadata = httpx.get(f"{predictor_url}/v2/models/flights", timeout=10).json()
    names = [i["name"] for i in metadata["inputs"]]
    assert names == load(sample_model).preprocessor.feature_columns
    assert {i["datatype"] for i in metadata["inputs"]} == {"FP64", "BYTES"}
    assert [o["name"] for o in metadata["outputs"]] == ["predicted_class", "probabilities"]


@pytest.mark.e2e
def test_unknown_categories_and_nulls_are_predicted_not_refused(predictor_url, sample_model, rows):
    instance = _instances(sample_model, rows)[0]
    instance.update(carrier="ZZ-NEW", dep_delay=None)
    response = _v1(predictor_url, {"instances": [instance]})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def _bad_cases(instance):
    missing = {k: v for k, v in instance.items() if k != "distance"}
    return [
        ({"instances": [missing]}, "missing feature 'distance'"),
        ({"instances": [{**instance, "distance": "far"}]}, "'distance'"),
        ({"instances": [{**instance, "dep_delay": [1, 2]}]}, "'dep_delay'"),
        ({"instances": [{**instance, "carrier": {"nested": "garbage"}}]}, "'carrier'"),
        ({"instances": []}, "non-empty list"),
        ({"instances": "rows"}, "instances"),
        ({"rows": []}, '"instances"'),
        ({"instances": [instance] * 513}, "maximum batch is 512"),
        ({"instances": [1, 2]}, "instances[0] must be an object"),
        ({"instances": [instance, {**instance, "month": True}]}, "feature 'month' mixes types"),
        ({"instances": [instance, {**instance, "origin": None}, missing]}, "instances[2] is missing feature"),
    ]


@pytest.mark.e2e
def test_every_bad_v1_payload_is_a_400_naming_the_field(predictor_url, sample_model, rows):
    instance = _instances(sample_model, rows)[0]
    for body, message in _bad_cases(instance):
        response = _v1(predictor_url, body)
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], (message, response.text)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("1e999", "number is infinity"),
        ("-1e999", "number is infinity"),
        ("NaN", "Unrecognized request format"),
        ("Infinity", "Unrecognized request format"),
    ],
)
def test_non_finite_numbers_are_a_400(predictor_url, sample_model, rows, literal, message):
    # KServe's JSON decoder refuses these before the model sees them, naming the position;
    # 1e999 overflows to infinity, NaN and Infinity are not JSON at all.
    instance = _instances(sample_model, rows)[0]
    body = json.dumps({"instances": [instance]}).replace(
        f'"distance": {instance["distance"]}', f'"distance": {literal}'
    )
    response = httpx.post(
        f"{predictor_url}/v1/models/flights:predict",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400 and message in response.text, response.text


@pytest.mark.e2e
@pytest.mark.parametrize("body", ['{"instances": [{"month"', "not json at all", ""])
def test_malformed_json_is_a_400(predictor_url, body):
    response = httpx.post(
        f"{predictor_url}/v1/models/flights:predict",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400, response.text


@pytest.mark.e2e
def test_bad_v2_payloads_are_400s_naming_the_input(predictor_url, sample_model, rows):
    inputs = _v2_inputs(sample_model, rows)
    cases = [
        ({"inputs": inputs[1:]}, repr(inputs[0]["name"])),
        ({"inputs": [{**inputs[0], "datatype": "BYTES", "data": ["x"] * 32}, *inputs[1:]]}, inputs[0]["name"]),
        (
            {"inputs": [*inputs[:-1], {**inputs[-1], "shape": [31], "data": inputs[-1]["data"][:31]}]},
            f"input {inputs[-1]['name']!r} has 31 rows",
        ),
        ({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}, "features"),
        ({"inputs": []}, "inputs"),
    ]
    for body, message in cases:
        response = httpx.post(f"{predictor_url}/v2/models/flights/infer", json=body, timeout=10)
        assert response.status_code == 400, (message, response.text)
        assert message in response.text


@pytest.mark.e2e
def test_metrics_count_predictions_per_class_and_scores(predictor_url, sample_model, rows):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape():
        text = httpx.get(f"{predictor_url}/metrics", timeout=10).text
        families = text_string_to_metric_families(text)
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}, text

    before, _ = scrape()
    instances = _instances(sample_model, rows)
    predicted = []
    for batch in (instances[:1], instances[1:4], instances):  # the few-row and the vectorised paths
        predicted += [p["class"] for p in _v1(predictor_url, {"instances": batch}).json()["predictions"]]
    after, text = scrape()

    def grew(name, **labels):
        key = (name, tuple(sorted({"model_name": "flights", **labels}.items())))
        return after.get(key, 0) - before.get(key, 0)

    for label in (False, True):
        assert grew("mlworkloads_predictions_total", predicted_class=str(label)) == predicted.count(label)
    assert grew("mlworkloads_prediction_score_count") == len(predicted) == 1 + 3 + len(instances)
    assert grew("mlworkloads_prediction_score_bucket", le="+Inf") == len(predicted)
    assert "request_predict_seconds" in text  # KServe's own histograms are there too


def test_the_grafana_dashboard_queries_the_metrics_the_predictor_exports():
    import pathlib

    from mlworkloads.serving import predictor

    dashboard = json.loads(pathlib.Path(predictor.__file__).with_name("grafana-dashboard.json").read_text())
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert "mlworkloads_predictions_total" in expressions and "mlworkloads_prediction_score_bucket" in expressions


@pytest.mark.e2e
def test_a_body_over_the_cap_is_a_413_and_the_server_keeps_answering(predictor_url, sample_model, rows):
    huge = b'{"instances": [' + b'{"month": 1},' * 2_000_000 + b'{"month": 1}]}'  # about 26 MB
    response = httpx.post(
        f"{predictor_url}/v1/models/flights:predict",
        content=huge,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413 and "exceeds the limit of 16777216 bytes" in response.text
    # Without a Content-Length (chunked), the body is counted as it arrives.
    chunked = httpx.post(
        f"{predictor_url}/v1/models/flights:predict",
        content=(huge[i : i + (1 << 20)] for i in range(0, len(huge), 1 << 20)),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert chunked.status_code == 413 and "exceeds the limit of 16777216 bytes" in chunked.text
    ok = _v1(predictor_url, {"instances": _instances(sample_model, rows)[:1]})
    assert ok.status_code == 200


def test_large_batches_are_scored_off_the_event_loop_and_small_ones_on_it(sample_model, rows):
    import asyncio
    import threading

    from mlworkloads.serving.predictor import INLINE_ROWS, TabularModel

    model = TabularModel("flights", sample_model)
    model.load()
    instances = _instances(sample_model, rows)
    released = threading.Event()
    seen = []
    score = model._score

    def held_score(inputs):
        # Scoring waits for a coroutine on the event loop to release it: it is released only
        # if the loop keeps running meanwhile; on the loop itself it would wait out the timeout.
        seen.append((threading.current_thread() is threading.main_thread(), released.wait(timeout=5)))
        return score(inputs)

    model._score = held_score

    async def scenario(batch, hold=True):
        if hold:
            released.clear()
        task = asyncio.create_task(model.predict({"instances": batch}))
        await asyncio.sleep(0)  # the predict task starts and hands scoring off (or blocks the loop here)
        released.set()
        return await task

    large = (instances * (INLINE_ROWS // len(instances) + 1))[: INLINE_ROWS + 1]
    assert len(asyncio.run(scenario(large))["predictions"]) == INLINE_ROWS + 1
    assert seen.pop() == (False, True), "a large batch must be scored in a thread while the loop runs"
    assert len(asyncio.run(scenario(instances[:2], hold=False))["predictions"]) == 2
    on_loop, _ = seen.pop()
    assert on_loop, "a small batch is scored inline on the event loop"
