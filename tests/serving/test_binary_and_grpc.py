"""The predictor's fast paths over real sockets: V2 binary tensors over HTTP and V2 over gRPC,
through Triton's clients (a third party's implementation of the protocol), and every bad input."""

import json

import httpx
import numpy as np
import orjson
import pytest
from support.v2_cases import bad_binary_requests, bad_grpc_requests, binary_body, feature_specs, json_specs, triton_grpc

from mlworkloads.serving import v2_rest
from mlworkloads.training.export import load


@pytest.fixture(scope="module")
def specs(sample_model, rows):
    return feature_specs(sample_model, rows)


def _infer(url, body, headers):
    return httpx.post(f"{url}/v2/models/flights/infer", content=body, headers=headers, timeout=30)


@pytest.mark.e2e
@pytest.mark.parametrize("binary_outputs", [True, False])
def test_tritons_http_client_with_binary_tensors_gets_the_offline_predictions(
    predictor_url, specs, offline, binary_outputs
):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(predictor_url.removeprefix("http://"))
    inputs = []
    for spec in specs:
        item = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
        array = np.array(spec["data"], dtype=object if spec["datatype"] == "BYTES" else np.float64)
        item.set_data_from_numpy(array, binary_data=True)
        inputs.append(item)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary_outputs) for n in ("probabilities", "predicted_class")]
    result = client.infer("flights", inputs, outputs=outputs)
    np.testing.assert_allclose(result.as_numpy("probabilities"), offline, atol=1e-6)
    classes = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predicted_class").tolist()]
    assert classes == [str(bool(i)) for i in offline.argmax(axis=1)]


@pytest.mark.e2e
def test_the_server_metadata_names_the_binary_tensor_extension(predictor_url):
    import tritonclient.http as triton

    metadata = triton.InferenceServerClient(predictor_url.removeprefix("http://")).get_server_metadata()
    assert metadata["name"] == "kserve"
    assert {"binary_tensor_data", "model_repository_extension"} <= set(metadata["extensions"])


@pytest.mark.e2e
def test_binary_outputs_come_after_the_json_header_the_response_names(predictor_url, specs, offline):
    body, headers = binary_body(specs, outputs=("probabilities", "predicted_class"))
    response = _infer(predictor_url, body, headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[v2_rest.HEADER_LENGTH])
    header = json.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert length + sum(sizes) == len(response.content)
    values = v2_rest.decode_response(response.content, str(length))
    np.testing.assert_allclose(values["probabilities"], offline, atol=1e-6)


@pytest.mark.e2e
def test_a_request_asking_binary_data_output_gets_every_output_binary(predictor_url, specs, offline):
    document = {"inputs": specs, "parameters": {"binary_data_output": True}}
    response = _infer(predictor_url, orjson.dumps(document), {})  # JSON, sent with no Content-Type
    assert response.status_code == 200, response.text
    values = v2_rest.decode_response(response.content, response.headers[v2_rest.HEADER_LENGTH])
    assert set(values) == {"probabilities", "predicted_class"}
    np.testing.assert_allclose(values["probabilities"], offline, atol=1e-6)


@pytest.mark.e2e
def test_a_v2_nan_is_served_as_a_missing_value(predictor_url, sample_model, rows, specs):
    import pyarrow as pa

    nulls = rows.set_column(rows.schema.get_field_index("dep_time"), "dep_time", pa.nulls(rows.num_rows, pa.int64()))
    with_nan = [{**s, "data": [float("nan")] * len(s["data"])} if s["name"] == "dep_time" else s for s in specs]
    values = v2_rest.decode_response(*_response(predictor_url, with_nan))
    np.testing.assert_allclose(values["probabilities"], load(sample_model).predict_columns(nulls), atol=1e-6)


@pytest.mark.e2e
def test_a_nan_from_tritons_json_mode_is_a_missing_value_too(predictor_url, sample_model, rows, specs):
    # tritonclient.http's JSON mode writes a float's NaN as the token `NaN` (not JSON; Python's
    # json.dumps writes it): it must mean what the same NaN means in a binary tensor.
    import pyarrow as pa
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(predictor_url.removeprefix("http://"))

    def probabilities(dep_time: float):
        inputs = []
        for spec in specs:
            item = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
            data = [dep_time] * len(spec["data"]) if spec["name"] == "dep_time" else spec["data"]
            item.set_data_from_numpy(np.array(data, dtype=object if spec["datatype"] == "BYTES" else np.float64), False)
            inputs.append(item)
        outputs = [triton.InferRequestedOutput("probabilities", binary_data=False)]
        return client.infer("flights", inputs, outputs=outputs).as_numpy("probabilities")

    nulls = rows.set_column(rows.schema.get_field_index("dep_time"), "dep_time", pa.nulls(rows.num_rows, pa.int64()))
    np.testing.assert_allclose(probabilities(float("nan")), load(sample_model).predict_columns(nulls), atol=1e-6)
    with pytest.raises(InferenceServerException, match=r"\[400\] input 'dep_time' holds infinity"):
        probabilities(float("inf"))


def _response(url, specs):
    response = _infer(url, *binary_body(specs))
    assert response.status_code == 200, response.text
    return response.content, response.headers.get(v2_rest.HEADER_LENGTH)


@pytest.mark.e2e
def test_every_malformed_binary_request_is_a_400_naming_what_is_wrong(predictor_url, specs):
    for i, (body, headers, message) in enumerate(bad_binary_requests(specs)):
        response = _infer(predictor_url, body, headers)
        assert response.status_code == 400, (i, message, response.status_code, response.text)
        assert message in response.json()["error"], (i, response.text)


@pytest.mark.e2e
def test_tritons_grpc_client_gets_the_offline_predictions(predictor_grpc, specs, offline):
    (answer,) = triton_grpc({"url": predictor_grpc, "model": "flights", "requests": [{"inputs": json_specs(specs)}]})
    assert answer["ok"], answer
    np.testing.assert_allclose(np.array(answer["outputs"]["probabilities"]).reshape(-1, 2), offline, atol=1e-6)
    assert answer["outputs"]["predicted_class"] == [str(bool(i)) for i in offline.argmax(axis=1)]


@pytest.mark.e2e
def test_every_malformed_grpc_request_is_invalid_argument_naming_the_input(predictor_grpc, specs):
    cases = bad_grpc_requests(specs)
    answers = triton_grpc({"url": predictor_grpc, "model": "flights", "requests": [r for r, _ in cases]})
    for (_, message), answer in zip(cases, answers, strict=True):
        assert not answer["ok"] and answer["code"] == "INVALID_ARGUMENT", (message, answer)
        assert message in answer["message"], (message, answer)


@pytest.mark.e2e
def test_a_deployed_predictor_exposes_grpc_where_kserve_expects_it():
    from mlworkloads.serving.inferenceservice import ServiceSettings, as_dict, build

    settings = ServiceSettings(
        name="flights", image="predictor:1", model_uri="s3://m/1", deployment_mode="Standard", grpc_port=8081
    )
    container = as_dict(build(settings, "team"))["spec"]["predictor"]["containers"][0]
    assert {"name": "grpc", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert container["args"][container["args"].index("--grpc_port") + 1] == "8081"
