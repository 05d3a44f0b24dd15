"""data/storage.py: every URI scheme opens the same way, reads fail naming the URI, writes are whole."""

import os
import pathlib

import pytest
from conftest import free_port

from mlworkloads.data import storage
from mlworkloads.data.errors import DataError
from mlworkloads.data.flights import FLIGHTS_URI


def test_the_sample_uri_resolves_to_the_file_the_package_ships():
    path = storage.resolve(FLIGHTS_URI)
    assert os.path.isfile(path) and storage.local_file(FLIGHTS_URI) == path


def test_an_unknown_sample_is_refused_naming_the_one_there_is():
    with pytest.raises(DataError, match=f"unknown sample 'sample://nycflights13/planes'.*{FLIGHTS_URI}"):
        storage.resolve("sample://nycflights13/planes")


def test_kfps_minio_uris_are_read_as_s3():
    assert storage.artifact_uri("minio://mlpipeline/v2/artifacts/x") == "s3://mlpipeline/v2/artifacts/x"
    assert storage.artifact_uri("gs://bucket/x") == "gs://bucket/x"


def test_a_scheme_without_a_filesystem_is_refused_naming_the_uri_and_the_schemes():
    with pytest.raises(DataError, match=r"cannot open 'nosuch://bucket/x'.*Expected a local path, file://"):
        storage.filesystem("nosuch://bucket/x")


def test_local_file_is_a_path_only_for_an_existing_local_file(tmp_path, http_dir):
    existing = tmp_path / "table.parquet"
    existing.write_bytes(b"x")
    assert storage.local_file(str(existing)) == str(existing)
    assert storage.local_file(f"file://{existing}") == str(existing)
    assert storage.local_file(str(tmp_path / "missing.parquet")) is None
    assert storage.local_file(str(tmp_path)) is None
    root, base = http_dir
    (root / "table.parquet").write_bytes(b"x")
    assert storage.local_file(f"{base}/table.parquet") is None


@pytest.mark.parametrize("where", ["local", "http", "s3"])
def test_read_bytes_reads_every_scheme_and_names_a_missing_file(where, tmp_path, http_dir, s3_bucket):
    if where == "local":
        (tmp_path / "a.bin").write_bytes(b"payload")
        uri, missing = str(tmp_path / "a.bin"), str(tmp_path / "b.bin")
    elif where == "http":
        root, base = http_dir
        (root / "a.bin").write_bytes(b"payload")
        uri, missing = f"{base}/a.bin", f"{base}/b.bin"
    else:
        with storage.atomic_open(f"s3://{s3_bucket}/a.bin") as f:
            f.write(b"payload")
        uri, missing = f"s3://{s3_bucket}/a.bin", f"s3://{s3_bucket}/b.bin"
    assert storage.read_bytes(uri) == b"payload"
    with pytest.raises(DataError) as err:
        storage.read_bytes(missing)
    assert str(err.value) == f"file not found: {missing!r}. Check the path or URI."
    assert storage._read.statistics["attempt_number"] == 1  # a missing file is not retried


def test_a_server_that_is_down_is_retried_then_named():
    uri = f"http://127.0.0.1:{free_port()}/table.parquet"  # nothing listens there
    with pytest.raises(DataError, match=rf"cannot read '{uri}': cannot connect .*Is the server up\?"):
        storage.read_bytes(uri)
    assert storage._read.statistics["attempt_number"] == 3


def test_atomic_local_path_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "nested" / "metrics.json"
    with storage.atomic_local_path(str(target)) as tmp:
        assert not target.exists()
        pathlib.Path(tmp).write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), storage.atomic_local_path(str(target)) as tmp:
        pathlib.Path(tmp).write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "first"
    assert os.listdir(target.parent) == ["metrics.json"]  # no temporary file left behind


@pytest.mark.parametrize("size", [7, 12 * 2**20], ids=["one-request", "multipart"])
def test_a_failed_write_to_s3_leaves_no_object_and_a_good_one_is_whole(size, s3_bucket):
    uri = f"s3://{s3_bucket}/model/model.pt"
    with pytest.raises(RuntimeError), storage.atomic_open(uri) as f:
        f.write(b"x" * size)
        raise RuntimeError("the writer failed")
    fs, path = storage.filesystem(uri)
    fs.invalidate_cache()
    assert not fs.exists(path)  # fsspec's default would have uploaded the half-written bytes
    assert fs.ls(f"{s3_bucket}", detail=False) == []
    with storage.atomic_open(uri) as f:
        f.write(b"y" * size)
    fs.invalidate_cache()
    assert storage.read_bytes(uri) == b"y" * size
    assert fs.call_s3("list_multipart_uploads", Bucket=s3_bucket).get("Uploads", []) == []


def test_a_failed_write_keeps_the_previous_object(s3_bucket):
    uri = f"s3://{s3_bucket}/metrics.json"
    with storage.atomic_open(uri) as f:
        f.write(b'{"epoch": 1}')
    with pytest.raises(RuntimeError), storage.atomic_open(uri) as f:
        f.write(b'{"epo')
        raise RuntimeError("the writer failed")
    storage.filesystem(uri)[0].invalidate_cache()
    assert storage.read_bytes(uri) == b'{"epoch": 1}'
