"""Storage faults against a real S3 server (moto on 127.0.0.1): clean failures, nothing truncated read as valid."""

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
import torch

from mlworkloads.data.errors import DataError
from mlworkloads.data.ingest import IngestConfig
from mlworkloads.data.steps import ingest_step
from mlworkloads.training import checkpoint


@pytest.fixture
def own_s3(tmp_path, monkeypatch):
    """A moto S3 server of this test's own, so that it can be stopped mid-test."""
    from conftest import free_port
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    # moto keeps one in-memory store per process: a bucket of this test's own.
    bucket = f"faults-{os.urandom(4).hex()}"
    fs.mkdir(bucket)
    state = {"server": server}

    def stop():
        if state["server"] is not None:
            state["server"].stop()
            state["server"] = None
        s3fs.S3FileSystem.clear_instance_cache()

    def restart():
        # moto keeps its store in this process, so a new server on the port serves the same objects.
        state["server"] = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        state["server"].start()
        s3fs.S3FileSystem.clear_instance_cache()

    stop.restart = restart
    yield fs, stop, bucket
    stop()


def test_ingest_from_a_stopped_object_store_fails_cleanly_and_writes_nothing(own_s3, tmp_path):
    fs, stop, bucket = own_s3
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2], "y": [True, False]}), buffer)
    fs.pipe(f"{bucket}/t.parquet", buffer.getvalue())
    stop()
    dataset, report = tmp_path / "dataset", tmp_path / "report"
    with pytest.raises(DataError, match=rf"cannot read 's3://{bucket}/t.parquet': cannot connect"):
        ingest_step(IngestConfig(source_uri=f"s3://{bucket}/t.parquet"), str(dataset), str(report))
    assert not dataset.exists() and not report.exists() and os.listdir(tmp_path) == []


def _state(value):
    return {"weights": torch.full((1000,), float(value)), "epoch": value}


def test_a_truncated_checkpoint_object_is_refused_not_resumed_from(own_s3):
    fs, _, bucket = own_s3
    directory = f"s3://{bucket}/run-1/checkpoints"
    checkpoint.save(directory, 0, _state(0))
    uri = checkpoint.save(directory, 1, _state(1))
    path = uri.removeprefix("s3://")
    fs.pipe(path, fs.cat_file(path)[:500])  # the object store kept half an upload
    with pytest.raises(checkpoint.CheckpointError, match="is truncated or corrupted"):
        checkpoint.load_latest(directory)


def test_a_checkpoint_write_that_fails_leaves_the_previous_one_current(own_s3):
    fs, stop, bucket = own_s3
    directory = f"s3://{bucket}/run-2/checkpoints"
    checkpoint.save(directory, 0, _state(0))
    pointer_before = fs.cat_file(f"{bucket}/run-2/checkpoints/latest.json")
    stop()
    with pytest.raises(Exception):  # noqa: B017 - whatever the S3 client raises, the save must fail
        checkpoint.save(directory, 1, _state(1))
    stop.restart()
    assert s3fs.S3FileSystem().cat_file(f"{bucket}/run-2/checkpoints/latest.json") == pointer_before
    assert checkpoint.load_latest(directory)["epoch"] == 0
