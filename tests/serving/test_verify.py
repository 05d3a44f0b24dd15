"""serving/verify.py: a team's examples checked against an endpoint's answers, differences named by path."""

import http.server
import threading

import pytest
from support.json_http import JsonHandler

from mlworkloads.serving.errors import SmokeTestFailed
from mlworkloads.serving.verify import check_examples, verify_examples


class _Endpoint(JsonHandler):
    """Answers V1 with the instances' first values, V2 with a fresh id and the data doubled."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self._json()
        if self.path == "/v1/models/m:predict":
            self._send(200, {"predictions": [row[0] for row in body["instances"]]})
        elif self.path == "/v2/models/m/infer":
            data = [2 * v for v in body["inputs"][0]["data"]]
            self._send(200, {"id": "generated", "model_name": "m", "outputs": [{"name": "y", "data": data}]})
        else:
            self._send(404, {"error": f"no model at {self.path}"})


@pytest.fixture(scope="module")
def endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_examples_answered_as_expected_pass_within_the_tolerance(endpoint):
    examples = [
        {"request": {"instances": [[1.0, 9], [2.5, 9]]}, "expected": {"predictions": [1.0, 2.50001]}},
        {"request": {"instances": [[7, 0]]}, "expected": {"predictions": [7]}},
    ]
    result = verify_examples(endpoint, "m", examples, tolerance=1e-3)
    assert result.rows == 2 and result.max_difference == pytest.approx(1e-5)


def test_a_v2_expected_response_names_only_the_keys_that_matter(endpoint):
    example = {
        "request": {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2]}]},
        "expected": {"model_name": "m", "outputs": [{"data": [3.0, 4.0]}]},
    }
    assert verify_examples(endpoint, "m", [example], protocol="v2").rows == 1


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        ({"predictions": [1.0, 3.0]}, ".predictions[1]: expected 3.0, got 2.0 (difference 1 > 0.0001)"),
        ({"predictions": [1.0]}, ".predictions: expected 1 items, got 2"),
        ({"predictions": [1.0, 2.0], "model": "x"}, ".model: missing"),
        ({"predictions": ["1", 2.0]}, ".predictions[0]: expected '1', got 1.0"),
        ({"predictions": {"a": 1}}, ".predictions: expected an object, got list"),
    ],
    ids=["number", "length", "missing-key", "type", "shape"],
)
def test_an_answer_that_differs_fails_naming_the_example_and_the_path(endpoint, expected, message):
    examples = [{"request": {"instances": [[1.0], [2.0]]}, "expected": expected}]
    with pytest.raises(SmokeTestFailed) as err:
        verify_examples(endpoint, "m", examples)
    assert "example 0's response differs from the expected one" in str(err.value)
    assert message in str(err.value)


def test_an_error_answer_fails_with_its_status(endpoint):
    with pytest.raises(SmokeTestFailed, match=r"/v1/models/other:predict answered 404: .*no model at"):
        verify_examples(endpoint, "other", [{"request": {"instances": [[1]]}, "expected": {}}])


@pytest.mark.parametrize(
    ("examples", "protocol", "message"),
    [
        ([], "v1", "verify_examples must be a non-empty list"),
        ({"request": {}, "expected": {}}, "v1", "verify_examples must be a non-empty list"),
        ([{"request": {}, "expected": {}, "note": 1}], "v1", "verify_examples[0] must be an object with exactly"),
        ([{"request": [1], "expected": {}}], "v1", "verify_examples[0].request must be a JSON object"),
        ([{"request": {}, "expected": {}}], "grpc", "verify_protocol='grpc': expected one of ['v1', 'v2']"),
    ],
    ids=["empty", "not-a-list", "extra-key", "request-list", "protocol"],
)
def test_malformed_examples_are_refused_naming_them(examples, protocol, message):
    with pytest.raises(ValueError) as err:
        check_examples(examples, protocol)
    assert message in str(err.value)
