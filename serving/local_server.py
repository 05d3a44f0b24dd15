"""The local backend: the predictor as a real KServe server on 127.0.0.1, smoke-tested as on a cluster.

`deploy_local` serves the model, runs the same smoke test the KServe backend runs, and returns the
manifest that would have been applied; `local_predictor` is the server itself, for `mlworkloads
serve`-like uses (the demo, the bench, the tests).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psutil
import pyarrow as pa

from mlworkloads.processes import stop_processes
from mlworkloads.serving.errors import DeployFailed
from mlworkloads.serving.inferenceservice import MODEL_MOUNT, ServiceSettings, as_dict, build
from mlworkloads.serving.smoke import smoke_test
from mlworkloads.training.export import load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_predictor(
    model_dir: str,
    name: str,
    max_batch_size: int = 4096,
    ready_timeout: float = 120.0,
    grpc_port: int = 0,
    per_request_logs: str = "all",
) -> Iterator[str]:
    """Runs `python -m mlworkloads.serving` on a free 127.0.0.1 port; yields its base URL.

    Its gRPC API listens on `grpc_port` (a free port when 0). The server is stopped (with any
    worker processes) when the block exits.
    """
    port, grpc_port = free_port(), grpc_port or free_port()
    from mlworkloads.serving.__main__ import arguments

    server = arguments(model_dir, name, port, grpc_port, max_batch_size, per_request_logs)
    with _serving([sys.executable, "-m", "mlworkloads.serving", *server], name, port, ready_timeout) as base:
        yield base


@contextlib.contextmanager
def local_command_server(
    command: list[str], args: list[str], model_dir: str, name: str, ready_timeout: float = 120.0
) -> Iterator[str]:
    """Runs a team's predictor command here as KServe would run its container; yields its base URL.

    The model's local directory stands in for `MODEL_MOUNT` in the arguments (and is its
    `STORAGE_URI`), and `--http_port` and `--grpc_port` on free ports are appended: KServe's
    ModelServer reads them, the last given winning. `python` is this interpreter.
    """
    port, grpc_port = free_port(), free_port()
    program = [sys.executable if command[0] in ("python", "python3") else command[0], *command[1:]]
    argv = [*program, *(a.replace(MODEL_MOUNT, model_dir) for a in args)]
    argv += ["--http_port", str(port), "--grpc_port", str(grpc_port)]
    with _serving(argv, name, port, ready_timeout, env={"STORAGE_URI": model_dir}) as base:
        yield base


@contextlib.contextmanager
def _serving(argv: list[str], name: str, port: int, ready_timeout: float, env: dict[str, str] | None = None):
    # The server's log goes to a file: a pipe nobody drains fills up and blocks the server.
    with tempfile.NamedTemporaryFile("w+", prefix=f"predictor-{name}-", suffix=".log") as log_file:
        process = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, name, process, ready_timeout, log_file.name)
            yield base
        finally:
            stop_process_tree(process)


def wait_ready(base: str, name: str, process: subprocess.Popen, timeout: float, log_path: str) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                with open(log_path, encoding="utf-8", errors="replace") as f:
                    output = f.read()
                raise DeployFailed(f"the predictor exited with code {process.returncode}:\n{output[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                response = client.get(f"{base}/v1/models/{name}")
                if response.status_code == 200 and response.json().get("ready"):
                    return
            time.sleep(0.1)
    raise DeployFailed(f"the predictor at {base} was not ready within {timeout:.0f} s")


def stop_process_tree(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the grace period, to the process and everything it started."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    stop_processes(tree, term_grace=grace_seconds)
    with contextlib.suppress(Exception):
        process.wait(timeout=5)


def deploy_local(
    settings: ServiceSettings,
    model_dir: str,
    test_rows: pa.Table,
    expected: pa.Table,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Serves the model locally, smoke-tests it, and returns the manifest and status."""
    model = load(model_dir)
    manifest = as_dict(build(settings, settings.namespace or "default"))
    with local_predictor(
        model_dir, settings.name, settings.max_batch_size, per_request_logs=settings.per_request_logs
    ) as base:
        echo(f"local predictor ready at {base}")
        result = smoke_test(base, settings.name, test_rows, expected, model.preprocessor)
        echo(
            f"smoke test passed: {result.rows} rows over {result.protocol}, max difference {result.max_difference:.2g}"
        )
        url = f"{base}/v1/models/{settings.name}"
    status = {
        "backend": "local",
        "ready": True,
        "url": url,
        "smoke_test": {"rows": result.rows, "max_difference": result.max_difference, "protocol": result.protocol},
        "note": "the local predictor is stopped after the check",
    }
    if settings.logger_url:
        # KServe's agent logs predictions; nothing here does. Said, not dropped silently.
        status["note"] += f"; logger_url {settings.logger_url} is in the manifest, but the local predictor logs nothing"
        echo(f"note: logger_url={settings.logger_url} takes effect on KServe only: the local predictor logs nothing")
    return {"manifest": manifest, "status": status, "url": url}


def deploy_command_locally(
    settings: ServiceSettings, model_dir: str, verify: Callable[[str], Any], echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """A custom predictor's command served here and verified; returns the manifest a cluster would get.

    Raises:
        DeployFailed: a model format (its runtime is the cluster's), or no local model directory.
    """
    if settings.model_format or not settings.command:
        raise DeployFailed(
            "the local backend runs a custom predictor's command on this machine; a model format is served by "
            "the cluster's ServingRuntime: deploy with backend 'kserve' (or 'auto' in a pipeline on the cluster)."
        )
    if not model_dir or not os.path.isdir(model_dir):
        raise DeployFailed(f"the local backend serves a local model directory; {model_dir!r} is not one.")
    manifest = as_dict(build(settings, settings.namespace or "default"))
    with local_command_server(settings.command, settings.args, model_dir, settings.name) as base:
        echo(f"local predictor ready at {base}")
        result = verify(base)
        echo(f"verified: {result.rows} examples answered as expected, max difference {result.max_difference:.2g}")
    status = {
        "backend": "local",
        "ready": True,
        "url": base,
        "verified": {"examples": result.rows, "max_difference": result.max_difference},
        "note": "the local predictor is stopped after the check",
    }
    return {"manifest": manifest, "status": status, "url": base}
