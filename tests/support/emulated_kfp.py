"""EMULATED Kubeflow Pipelines API (v2beta1 REST) on 127.0.0.1. Not KFP: an emulation for tests.

Serves the paths `kfp.Client` and the `kfp` CLI call to upload pipelines and versions, create
experiments, runs and recurring runs, and read them back. Uploaded specs and run requests are
kept as received, so tests can check what a client really sent. Runs end in the state named
by `run_outcome` ("SUCCEEDED" by default) a moment after they are created.
"""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import http.server
import json
import re
import threading
import urllib.parse
import uuid
from typing import Any

import yaml

from support.json_http import JsonHandler


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EmulatedKfp:
    def __init__(self):
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self.run_outcome = "SUCCEEDED"
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> EmulatedKfp:
        emulator = self

        class Handler(_Handler):
            kfp = emulator

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # ---- resources -----------------------------------------------------------------------------

    def add_pipeline(self, name: str, description: str, package: dict[str, Any]) -> dict[str, Any]:
        if any(p["display_name"] == name for p in self.pipelines.values()):
            raise _Error(409, f"pipeline with name {name!r} already exists")
        pipeline_id = str(uuid.uuid4())
        pipeline = {
            "pipeline_id": pipeline_id,
            "display_name": name,
            "name": name,
            "description": description,
            "created_at": _now(),
        }
        self.pipelines[pipeline_id] = pipeline
        self.versions[pipeline_id] = []
        self.add_version(pipeline_id, name, package)
        return pipeline

    def add_version(self, pipeline_id: str, name: str, package: dict[str, Any]) -> dict[str, Any]:
        if pipeline_id not in self.pipelines:
            raise _Error(404, f"pipeline {pipeline_id} not found")
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": str(uuid.uuid4()),
            "display_name": name,
            "name": name,
            "created_at": _now(),
            **package,
        }
        self.versions[pipeline_id].append(version)
        return version

    def create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment = {**body, "experiment_id": str(uuid.uuid4()), "created_at": _now(), "storage_state": "AVAILABLE"}
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run = {**body, "run_id": str(uuid.uuid4()), "created_at": _now(), "state": "PENDING"}
        self.runs[run["run_id"]] = run
        threading.Timer(0.3, lambda: run.update(state=self.run_outcome, finished_at=_now())).start()
        return run

    def create_recurring_run(self, body: dict[str, Any]) -> dict[str, Any]:
        recurring = {**body, "recurring_run_id": str(uuid.uuid4()), "created_at": _now(), "status": "ENABLED"}
        self.recurring_runs[recurring["recurring_run_id"]] = recurring
        return recurring


class _Error(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _filtered(items: list[dict[str, Any]], raw_filter: str | None) -> list[dict[str, Any]]:
    if not raw_filter:
        return items
    predicates = json.loads(raw_filter).get("predicates", [])
    for predicate in predicates:
        key, value = predicate["key"], predicate.get("string_value", predicate.get("stringValue"))
        if key == "name":
            key = "display_name"
        items = [i for i in items if i.get(key) == value]
    return items


class _Handler(JsonHandler):
    kfp: EmulatedKfp

    def _upload(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw
        )
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                # A compiled package holds the pipeline spec and, when it has one, the platform spec.
                documents = list(yaml.safe_load_all(part.get_payload(decode=True)))
                return {"pipeline_spec": documents[0], "platform_spec": documents[1] if len(documents) > 1 else None}
        raise _Error(400, "no uploadfile in the request")

    def _route(self, method: str) -> None:
        parsed = urllib.parse.urlparse(self.path)
        path, query = parsed.path, {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        kfp = self.kfp
        try:
            with kfp.lock:
                code, body = self._dispatch(method, path, query, kfp)
            self._send(code, body)
        except _Error as err:
            self._send(err.code, {"error_message": err.message, "code": err.code, "message": err.message})

    def _dispatch(self, method, path, query, kfp):  # noqa: C901 - a routing table
        if path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if path == "/apis/v2beta1/pipelines/upload" and method == "POST":
            return 200, kfp.add_pipeline(
                query.get("name") or query.get("display_name"), query.get("description", ""), self._upload()
            )
        if path == "/apis/v2beta1/pipelines/upload_version" and method == "POST":
            return 200, kfp.add_version(
                query["pipelineid"], query.get("name") or query.get("display_name"), self._upload()
            )
        if path == "/apis/v2beta1/pipelines" and method == "GET":
            items = _filtered(list(kfp.pipelines.values()), query.get("filter"))
            return 200, {"pipelines": items, "total_size": len(items)}
        if m := re.fullmatch(r"/apis/v2beta1/pipelines/names/([^/]+)", path):
            found = [p for p in kfp.pipelines.values() if p["display_name"] == urllib.parse.unquote(m[1])]
            if not found:
                raise _Error(404, "pipeline not found")
            return 200, found[0]
        if m := re.fullmatch(r"/apis/v2beta1/pipelines/([^/]+)/versions", path):
            versions = list(reversed(kfp.versions.get(m[1], [])))  # newest first, as sort_by created_at desc
            return 200, {"pipeline_versions": versions, "total_size": len(versions)}
        if m := re.fullmatch(r"/apis/v2beta1/pipelines/([^/]+)/versions/([^/]+)", path):
            for version in kfp.versions.get(m[1], []):
                if version["pipeline_version_id"] == m[2]:
                    return 200, version
            raise _Error(404, "pipeline version not found")
        if m := re.fullmatch(r"/apis/v2beta1/pipelines/([^/]+)", path):
            if m[1] not in kfp.pipelines:
                raise _Error(404, "pipeline not found")
            return 200, kfp.pipelines[m[1]]
        if path == "/apis/v2beta1/experiments":
            if method == "POST":
                return 200, kfp.create_experiment(self._json())
            items = _filtered(list(kfp.experiments.values()), query.get("filter"))
            return 200, {"experiments": items, "total_size": len(items)}
        if m := re.fullmatch(r"/apis/v2beta1/experiments/([^/]+)", path):
            return 200, kfp.experiments[m[1]]
        if path == "/apis/v2beta1/runs" and method == "POST":
            return 200, kfp.create_run(self._json())
        if m := re.fullmatch(r"/apis/v2beta1/runs/([^/:]+)", path):
            if m[1] not in kfp.runs:
                raise _Error(404, "run not found")
            return 200, kfp.runs[m[1]]
        if path == "/apis/v2beta1/recurringruns" and method == "POST":
            return 200, kfp.create_recurring_run(self._json())
        if m := re.fullmatch(r"/apis/v2beta1/recurringruns/([^/]+)", path):
            return 200, kfp.recurring_runs[m[1]]
        raise _Error(404, f"the emulated KFP API does not serve {method} {path}")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")
