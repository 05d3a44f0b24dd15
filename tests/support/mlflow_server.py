"""A REAL MLflow tracking server for the tests: the `mlflow` package, SQLite behind it, and the
tests' S3 server (moto) for artifacts, which the server proxies (`--artifacts-destination`), so
clients upload through it as they do against a platform's MLflow.

The server lives in a virtualenv of its own, built once into `~/.cache/mlworkloads/mlflow/`:
`mlflow` 3.17 (the full package, with its UI and database layers) pins pyarrow below 26, which
the library needs; the library itself only talks to it with `mlflow-skinny`, the client.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import subprocess
import sys
import venv
from collections.abc import Iterator

from support.servers import server_process

#: The server's version: the client (`mlflow-skinny` in constraints.txt) is the same release.
MLFLOW_VERSION = "3.17.2"
CACHE = pathlib.Path(os.environ.get("MLWORKLOADS_CACHE", pathlib.Path.home() / ".cache" / "mlworkloads")) / "mlflow"


def server_python() -> pathlib.Path:
    """The interpreter of the server's virtualenv, built on first use (about a minute, pip's cache warm)."""
    root = CACHE / f"v{MLFLOW_VERSION}"
    python = root / "bin" / "python"
    done = root / ".complete"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time across test processes
        if not done.exists():
            venv.create(root, with_pip=True, clear=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", f"mlflow=={MLFLOW_VERSION}", "boto3"],
                check=True,
                timeout=900,
            )
            done.touch()
    return python


@contextlib.contextmanager
def mlflow_server(directory: pathlib.Path, port: int, s3_endpoint: str, bucket: str) -> Iterator[str]:
    """Runs `mlflow server` on 127.0.0.1:`port` until the block exits; yields its URI."""
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing-secret"),
    }
    command = [
        str(server_python()), "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{bucket}/mlflow",
    ]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    with server_process(command, directory / "server.log", f"{uri}/health", "mlflow server", 120, env):
        yield uri


if __name__ == "__main__":  # build ahead of the tests (CI's setup step)
    print(server_python(), file=sys.stderr)
