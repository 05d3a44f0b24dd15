"""Shared fixtures: real servers on loopback (moto's S3, http.server) and small real tables."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading

import pyarrow as pa
import pytest
from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
from mlworkloads.data.ingest import IngestConfig, ingest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1, with credentials in the environment for s3fs."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing-secret",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto server; yields its name."""
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    name = f"bucket-{os.urandom(4).hex()}"
    fs.mkdir(name)
    s3fs.S3FileSystem.clear_instance_cache()
    yield name


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """Serves `tmp_path/www` over http://127.0.0.1; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@functools.lru_cache(maxsize=1)
def _flights() -> pa.Table:
    return ingest(IngestConfig(source_uri=FLIGHTS_URI, **FLIGHTS_TASK))


@pytest.fixture(scope="session")
def flights_table() -> pa.Table:
    """The real flights table, ingested with the demo task (327,346 rows)."""
    return _flights()


@pytest.fixture(scope="session")
def flights_sample(flights_table) -> pa.Table:
    """A fixed random sample of 6,000 real flights, for quick tests."""
    import numpy as np

    rows = np.sort(np.random.default_rng(7).choice(flights_table.num_rows, 6000, replace=False))
    return flights_table.take(pa.array(rows))
