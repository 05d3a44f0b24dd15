"""Logged predictions -> a Dataset and a drift report, from exchanges with the real predictor.

The exchanges are real (V1 and V2 JSON against the predictor on loopback); they are logged the
two ways KServe's agent delivers them: its stored records (`pkg/logger/types.go` LogRequest,
JSON-marshalled, in S3 under the agent's object prefix) and CloudEvents in the structured JSON
format, built with the CloudEvents SDK, as a sink writes them.
"""

import base64
import json
import os
import uuid

import httpx
import pyarrow.parquet as pq
import pytest
import s3fs
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from mlworkloads.data.errors import DataError
from mlworkloads.data.events import REQUEST, RESPONSE
from mlworkloads.data.steps import prediction_logs_step
from mlworkloads.training.export import load


@pytest.fixture(scope="module")
def exchanges(predictor_url, sample_model, sample_features):
    """(request id, request body, response body) of 6 V1 requests of 3 rows and one V2 request of 4."""
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 22)
    model = load(sample_model)
    columns = model.preprocessor.feature_columns
    out = []
    for start in range(0, 18, 3):
        body = {"instances": [{c: rows[c][i].as_py() for c in columns} for i in range(start, start + 3)]}
        response = httpx.post(f"{predictor_url}/v1/models/flights:predict", json=body, timeout=30)
        out.append((str(uuid.uuid4()), body, response.json()))
    last = {c: rows[c][18:22].to_pylist() for c in columns}
    inputs = [
        {"name": c["name"], "datatype": "FP64", "shape": [4], "data": [float(v or 0) for v in last[c["name"]]]}
        for c in model.preprocessor.numeric
    ] + [
        {"name": c["name"], "datatype": "BYTES", "shape": [4], "data": [str(v) for v in last[c["name"]]]}
        for c in model.preprocessor.categorical
    ]
    response = httpx.post(f"{predictor_url}/v2/models/flights/infer", json={"inputs": inputs}, timeout=30)
    out.append((str(uuid.uuid4()), {"inputs": inputs}, response.json()))
    return out


def _log_request(kind, event_id, body):
    """One record as KServe's agent stores it (its JSON marshaller, one record per object)."""
    return {
        "bytes": base64.b64encode(json.dumps(body).encode()).decode(),
        "contentType": "application/json",
        "reqType": kind,
        "id": event_id,
        "inferenceService": "flights",
        "namespace": "team",
        "component": "predictor",
        "occurrenceTime": "2026-12-07T10:00:00Z",
    }


def test_the_agents_stored_records_in_s3_become_one_row_per_instance(exchanges, s3_endpoint, s3_bucket, tmp_path):
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    prefix = f"{s3_bucket}/logs/team/flights/predictor"
    for event_id, request, response in exchanges:
        fs.pipe(f"{prefix}/{event_id}-request.json", json.dumps(_log_request(REQUEST, event_id, request)).encode())
        fs.pipe(f"{prefix}/{event_id}-response.json", json.dumps(_log_request(RESPONSE, event_id, response)).encode())
    # The agent logs GETs too (a readiness check): no body, so no prediction, and its answer is not one.
    fs.pipe(f"{prefix}/get-request.json", json.dumps(_log_request(REQUEST, "get", None) | {"bytes": ""}).encode())
    fs.pipe(f"{prefix}/get-response.json", json.dumps(_log_request(RESPONSE, "get", {"status": "alive"})).encode())
    dataset, report = tmp_path / "logged.parquet", tmp_path / "report.md"
    summary = prediction_logs_step(f"s3://{s3_bucket}/logs", str(dataset), str(report))
    assert summary["requests"] == summary["responses"] == 7 and summary["rows"] == 6 * 3 + 4
    assert summary["calls_without_body"] == 1 and summary["other_events"] == 0
    table = pq.read_table(dataset)
    first_id, first_request, first_response = exchanges[0]
    rows = [r for r in table.to_pylist() if r["event_id"] == first_id]
    assert [r["event_row"] for r in rows] == [0, 1, 2]
    assert [r["month"] for r in rows] == [i["month"] for i in first_request["instances"]]
    assert [r["predicted_class"] for r in rows] == [str(p["class"]) for p in first_response["predictions"]]
    assert [r["probability_True"] for r in rows] == [p["probabilities"]["True"] for p in first_response["predictions"]]
    v2_id = exchanges[-1][0]
    v2_rows = [r for r in table.to_pylist() if r["event_id"] == v2_id]
    outputs = {o["name"]: o["data"] for o in exchanges[-1][2]["outputs"]}
    assert [r["predicted_class"] for r in v2_rows] == outputs["predicted_class"]
    # `flight` came as numbers over V1 and as text over V2: kept, as text.
    assert [r["flight"] for r in rows] == [str(i["flight"]) for i in first_request["instances"]]


def test_cloudevents_from_a_sink_with_a_lost_response_keep_every_row_and_compare_with_the_training_split(
    exchanges, sample_features, tmp_path
):
    lines = []
    for event_id, request, response in exchanges[:-1]:
        for kind, body in ((REQUEST, request), (RESPONSE, response)):
            if event_id == exchanges[0][0] and kind == RESPONSE:
                continue  # its response never reached the sink
            event = CloudEvent({"type": kind, "source": "http://flights.team/", "id": event_id}, body)
            lines.append(to_structured(event)[1].decode())
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    dataset, report = tmp_path / "logged.parquet", tmp_path / "report.md"
    summary = prediction_logs_step(
        str(tmp_path / "events.jsonl"), str(dataset), str(report), reference_path=sample_features["train_raw"]
    )
    assert {k: v for k, v in summary.items() if k not in ("columns", "schema")} == {
        "requests": 6,
        "responses": 5,
        "requests_without_response": 1,
        "responses_without_request": 0,
        "calls_without_body": 0,
        "other_events": 0,
        "rows": 18,
    }
    table = pq.read_table(dataset).to_pylist()
    unanswered = [r for r in table if r["event_id"] == exchanges[0][0]]
    assert len(unanswered) == 3 and all(r["predicted_class"] is None for r in unanswered)
    text = report.read_text()
    assert "requests without response: 1" in text
    assert f"## Drift against `{sample_features['train_raw']}`" in text and "| `distance` | numeric |" in text


def test_a_line_that_is_not_an_event_is_refused_naming_the_file_and_line_and_nothing_is_written(tmp_path):
    good = json.dumps({"specversion": "1.0", "id": "1", "type": REQUEST, "source": "s", "data": {"instances": [{}]}})
    (tmp_path / "events.jsonl").write_text(good + "\n{not json\n")
    with pytest.raises(DataError, match="events.jsonl line 2: not a JSON logged event"):
        prediction_logs_step(str(tmp_path / "events.jsonl"), str(tmp_path / "out.parquet"), str(tmp_path / "r.md"))
    assert not os.path.exists(tmp_path / "out.parquet") and not os.path.exists(tmp_path / "r.md")


def test_v2_binary_bodies_logged_without_their_header_are_read_and_a_cut_one_is_named(
    predictor_url, sample_model, sample_features, tmp_path
):
    """KServe's agent logs a body alone, without `Inference-Header-Content-Length`: the JSON part is
    found by parsing it, and the tensors' bytes after it are read as that part says."""
    from support.v2_cases import binary_body, feature_specs

    from mlworkloads.serving import v2_rest

    rows = pq.read_table(sample_features["test_raw"]).slice(30, 6)
    body, headers = binary_body(feature_specs(sample_model, rows), outputs=("predicted_class", "probabilities"))
    response = httpx.post(f"{predictor_url}/v2/models/flights/infer", content=body, headers=headers, timeout=30)
    assert response.status_code == 200 and v2_rest.HEADER_LENGTH.lower() in response.headers
    answered = v2_rest.decode_response(response.content, response.headers[v2_rest.HEADER_LENGTH])

    def event(kind, data):
        attributes = {"type": kind, "source": "s", "id": "b-1", "datacontenttype": "application/octet-stream"}
        return CloudEvent(attributes, data)

    lines = [to_structured(event(REQUEST, body))[1], to_structured(event(RESPONSE, response.content))[1]]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    dataset = tmp_path / "logged.parquet"
    summary = prediction_logs_step(str(tmp_path / "events.jsonl"), str(dataset), str(tmp_path / "r.md"))
    assert summary["rows"] == 6 and summary["requests_without_response"] == 0
    table = pq.read_table(dataset)
    assert table["carrier"].to_pylist() == rows["carrier"].to_pylist()
    assert table["distance"].to_pylist() == [float(v) for v in rows["distance"].to_pylist()]
    assert table["predicted_class"].to_pylist() == answered["predicted_class"].tolist()
    assert table["probability_1"].to_pylist() == answered["probabilities"][:, 1].tolist()

    (tmp_path / "events.jsonl").write_bytes(to_structured(event(REQUEST, body[:-5]))[1] + b"\n")
    with pytest.raises(DataError, match=r"events.jsonl line 1: the logged body is neither JSON .* nor a V2 body"):
        prediction_logs_step(str(tmp_path / "events.jsonl"), str(tmp_path / "cut.parquet"), str(tmp_path / "c.md"))
    assert not (tmp_path / "cut.parquet").exists()
