"""Logged predictions -> a table: what the model saw and what it answered, one row per instance.

KServe's logger agent logs each prediction as a request event and a response event sharing one
id (types `org.kubeflow.serving.inference.request` / `.response`), either to a CloudEvents sink
over HTTP or, batched, straight into object storage (`pkg/logger/store.go`, v0.20). Both forms are
read here, from a file or every `*.json` / `*.jsonl` file under a directory or prefix:

- KServe's stored records: JSON objects (or arrays of them) with `reqType`, `id`, `bytes`
  (the body, base64) and `occurrenceTime`, as its JSON marshaller writes them;
- CloudEvents in the structured JSON format, one per line, as a sink writes what it received:
  `type`, `id`, `time`, and `data` or `data_base64`.

Bodies are V1 (`instances` / `predictions`) or V2 JSON (`inputs` / `outputs`). A request whose
response was not logged keeps its rows with empty predictions; nothing is dropped silently: the
summary counts every request, response and unpaired event.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import posixpath
from typing import Any

import numpy as np
import pyarrow as pa

from mlworkloads.data import tensors
from mlworkloads.data.errors import DataError
from mlworkloads.data.storage import filesystem

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
#: Columns the table adds beside the features.
EVENT_ID, EVENT_TIME, ROW = "event_id", "event_time", "event_row"


@dataclasses.dataclass(frozen=True)
class LoggedEvent:
    id: str
    type: str
    time: str
    body: Any  # the decoded JSON body; None for a call without one (a GET)
    where: str  # file and line, for errors


def read_events(uri: str) -> list[LoggedEvent]:
    """Every logged event under `uri` (a file, a directory or an object-store prefix).

    Raises:
        DataError: no event files, or a record that is neither form, naming its file and line.
    """
    fs, root = filesystem(uri)
    files = sorted(p for p in fs.find(root) if p.endswith((".json", ".jsonl"))) if fs.isdir(root) else [root]
    if not files:
        raise DataError(f"no logged events (*.json, *.jsonl) under {uri!r}.")
    events = []
    for path in files:
        text = fs.cat_file(path).decode("utf-8")
        for where, record in _records(text, posixpath.basename(path)):
            events.append(_event(record, where))
    return events


def _records(text: str, name: str):
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise DataError(f"{name}: not a JSON array of logged events: {err}") from err
        yield from ((f"{name} item {i}", r) for i, r in enumerate(records))
        return
    # One record (perhaps pretty-printed), or JSON lines.
    lines = [stripped] if stripped.startswith("{") and "\n{" not in stripped.rstrip() else text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield f"{name} line {number}", json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{name} line {number}: not a JSON logged event: {err}") from err


def _event(record: Any, where: str) -> LoggedEvent:
    if not isinstance(record, dict):
        raise DataError(f"{where}: a logged event is a JSON object, not {type(record).__name__}.")
    if "reqType" in record:  # KServe's stored LogRequest
        kind, raw = record["reqType"], base64.b64decode(record.get("bytes") or "")
        body = _json_body(raw, where) if raw else None
        return LoggedEvent(str(record.get("id", "")), kind, str(record.get("occurrenceTime", "")), body, where)
    if "specversion" in record:  # a structured CloudEvent
        if record.get("data_base64"):
            body = _json_body(base64.b64decode(record["data_base64"]), where)
        else:
            body = record.get("data")
            if isinstance(body, str):
                body = _json_body(body.encode(), where) if body else None
        return LoggedEvent(
            str(record.get("id", "")), str(record.get("type", "")), str(record.get("time", "")), body, where
        )
    raise DataError(f"{where}: neither a KServe log record (reqType) nor a CloudEvent (specversion).")


def _json_body(raw: bytes, where: str) -> Any:
    """A logged body as JSON; a V2 body of binary tensors (what the smoke test and the canary check
    send) with its tensors' bytes read into their `data`, as if it had been sent as JSON."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        not_json = err
    try:
        end = tensors.json_part_length(raw)
        document = json.loads(raw[:end])
        specs = document["inputs"] if "inputs" in document else document["outputs"]
        values, used = tensors.decode_tensors(specs, memoryview(raw), end)
        if used != len(raw):
            raise DataError(f"{len(raw) - used} bytes after the tensors' binary data")
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"{where}: the logged body is neither JSON ({not_json}) nor a V2 body of binary tensors ({err})."
        ) from err
    for spec in specs:
        spec["data"] = np.asarray(values[spec["name"]]).ravel().tolist()  # flat, as V2 JSON sends data
    return document


def events_table(events: list[LoggedEvent]) -> tuple[pa.Table, dict[str, int]]:
    """One row per instance of every logged request, with the logged prediction beside it.

    Returns:
        The table (`event_id`, `event_time`, `event_row`, the features, then `predicted_class`
        and `probability_<class>`, or `prediction`) and a summary of what was read.

    Raises:
        DataError: a body that is neither V1 nor V2, or predictions that do not match the rows.
            A feature sent as text in one request and as a number in another is kept as text.
    """
    # The agent logs every call that reaches the predictor, its GETs too (health, metadata): a
    # request with no body is not a prediction, and neither is the answer to it.
    calls = {e.id for e in events if e.type == REQUEST and e.body is None}
    requests = {e.id: e for e in events if e.type == REQUEST and e.id not in calls}
    responses = {e.id: e for e in events if e.type == RESPONSE and e.id not in calls}
    rows: list[dict[str, Any]] = []
    for event in sorted(requests.values(), key=lambda e: (e.time, e.id)):
        instances = _instances(event)
        answers = _predictions(responses[event.id], len(instances)) if event.id in responses else [{}] * len(instances)
        for i, (instance, answer) in enumerate(zip(instances, answers, strict=True)):
            rows.append({EVENT_ID: event.id, EVENT_TIME: event.time, ROW: i, **instance, **answer})
    summary = {
        "requests": len(requests),
        "responses": len(responses),
        "requests_without_response": len(set(requests) - set(responses)),
        "responses_without_request": len(set(responses) - set(requests)),
        "calls_without_body": len(calls),
        "other_events": sum(e.type not in (REQUEST, RESPONSE) for e in events),
        "rows": len(rows),
    }
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {name: _uniform([row.get(name) for row in rows]) for name in names}
    try:
        table = pa.Table.from_pydict(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DataError(f"the logged rows do not form a table: {err}") from err
    return table, summary


def _uniform(values: list[Any]) -> list[Any]:
    """A column's values as one type: clients may send a category as a number in one request and
    as text in another (V1 JSON and V2 BYTES); such a column is kept as text, nothing dropped."""
    kinds = {type(v) for v in values if v is not None}
    if str in kinds and len(kinds) > 1:
        return [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]
    return values


def _instances(event: LoggedEvent) -> list[dict[str, Any]]:
    body = event.body
    if isinstance(body, dict) and isinstance(body.get("instances"), list):
        if not all(isinstance(i, dict) for i in body["instances"]):
            raise DataError(f"{event.where}: V1 instances must be objects of feature values.")
        return body["instances"]
    if isinstance(body, dict) and isinstance(body.get("inputs"), list):
        columns = {}
        for item in body["inputs"]:
            data = item.get("data") if isinstance(item, dict) else None
            if not isinstance(data, list):
                raise DataError(
                    f"{event.where}: V2 input {item!r} carries no JSON data (binary bodies are not logged as JSON)."
                )
            columns[item["name"]] = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise DataError(f"{event.where}: V2 inputs have different lengths {sorted(lengths)}.")
        n = lengths.pop() if lengths else 0
        return [{name: values[i] for name, values in columns.items()} for i in range(n)]
    raise DataError(f"{event.where}: a request body must be V1 (instances) or V2 (inputs).")


def _predictions(event: LoggedEvent, rows: int) -> list[dict[str, Any]]:
    body = event.body
    if isinstance(body, dict) and isinstance(body.get("predictions"), list):
        answers = [_v1_answer(p) for p in body["predictions"]]
    elif isinstance(body, dict) and isinstance(body.get("outputs"), list):
        answers = _v2_answers(body["outputs"], rows, event.where)
    else:
        raise DataError(f"{event.where}: a response body must be V1 (predictions) or V2 (outputs).")
    if len(answers) != rows:
        raise DataError(f"{event.where}: {len(answers)} predictions for a request of {rows} rows.")
    return answers


def _v1_answer(prediction: Any) -> dict[str, Any]:
    if isinstance(prediction, dict) and "class" in prediction:
        probabilities = {f"probability_{k}": v for k, v in (prediction.get("probabilities") or {}).items()}
        return {"predicted_class": str(prediction["class"]), **probabilities}
    return {"prediction": prediction}


def _v2_answers(outputs: list[dict], rows: int, where: str) -> list[dict[str, Any]]:
    named = {o.get("name"): o.get("data") for o in outputs if isinstance(o, dict)}
    if "prediction" in named:
        return [{"prediction": v} for v in named["prediction"]]
    classes, probabilities = named.get("predicted_class"), named.get("probabilities")
    if not isinstance(classes, list) and not isinstance(probabilities, list):
        raise DataError(f"{where}: a V2 response needs a predicted_class, probabilities or prediction output.")
    # A client may ask for some outputs only (the smoke test asks for the probabilities).
    answers = [{"predicted_class": str(c)} for c in classes] if isinstance(classes, list) else [{} for _ in range(rows)]
    if isinstance(probabilities, list) and rows and len(probabilities) % rows == 0:
        width = len(probabilities) // rows
        for i, answer in enumerate(answers):
            answer.update({f"probability_{k}": probabilities[i * width + k] for k in range(width)})
    return answers
