"""Open Inference Protocol tensors as bytes: the binary tensor data extension's layout, both ways.

A numeric tensor is its elements in row-major order, little-endian; a BYTES tensor is each
element as a 4-byte little-endian length and then its bytes. The same layout travels after the
JSON header of a REST request (`Inference-Header-Content-Length`) and in gRPC's
`raw_input_contents`, so one decoder serves both. Nothing here loops over rows in Python: a
batch of 4,096 rows costs a few numpy calls per tensor.

Every problem raises `TensorError` naming the tensor; the predictor answers it as invalid input
(HTTP 400, gRPC INVALID_ARGUMENT). The codec sits with the data formats, below serving, because
logged predictions (`events.py`) hold these bodies too.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa

from mlworkloads.data.errors import TensorError

#: Element types of the protocol's numeric datatypes (BYTES is variable-length).
NUMERIC_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMERIC_DTYPES, "BYTES")
_PREFIX = 4  # bytes of each BYTES element's length


def element_count(name: str, shape: object) -> int:
    """The number of elements of a tensor's `shape`, refused unless it is a list of whole numbers >= 0."""
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise TensorError(f"input {name!r}: shape must be a list of whole numbers >= 0, got {shape!r}.")
    return math.prod(shape)


def check_datatype(name: str, datatype: object) -> str:
    if datatype not in DATATYPES:
        raise TensorError(f"input {name!r} has datatype {datatype!r}; expected one of {list(DATATYPES)}.")
    return datatype


def decode_numeric(name: str, datatype: str, shape: list[int], raw: bytes | memoryview) -> np.ndarray:
    """A numeric tensor's bytes -> a flat array (a view of `raw`, not a copy)."""
    dtype = NUMERIC_DTYPES[datatype]
    count = element_count(name, shape)
    if len(raw) != count * dtype.itemsize:
        raise TensorError(
            f"input {name!r} has {len(raw)} bytes of binary data; shape {shape} of {datatype} needs "
            f"{count * dtype.itemsize} ({count} x {dtype.itemsize})."
        )
    return np.frombuffer(raw, dtype=dtype)


def decode_bytes(name: str, shape: list[int], raw: bytes | memoryview) -> pa.Array:
    """A BYTES tensor's bytes -> an Arrow string array of its elements (UTF-8 checked)."""
    count = element_count(name, shape)
    buffer = np.frombuffer(raw, dtype=np.uint8)
    uniform = _uniform_elements(buffer, count)
    if uniform is not None:
        data, offsets = uniform
    else:
        starts, ends = _element_bounds(buffer, count, name)
        # The elements' bytes without their length prefixes, and where each one ends among them.
        keep = np.ones(len(buffer), dtype=bool)
        keep[(starts[:, None] + np.arange(_PREFIX)).ravel()] = False
        data = buffer[keep]
        offsets = np.empty(count + 1, dtype=np.int32)
        offsets[0] = 0
        np.cumsum(ends - starts - _PREFIX, out=offsets[1:])
    values = pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        values.validate(full=True)
    except pa.ArrowInvalid as err:
        raise TensorError(f"input {name!r}: BYTES elements must be UTF-8 text: {err}") from err
    return values


def _uniform_elements(buffer: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The elements' bytes and offsets when all have the first one's length (codes, identifiers)."""
    if count == 0 or len(buffer) < _PREFIX:
        return None
    first = int.from_bytes(buffer[:_PREFIX].tobytes(), "little")
    if (_PREFIX + first) * count != len(buffer):
        return None
    rows = buffer.reshape(count, _PREFIX + first)
    if not (rows[:, :_PREFIX] == rows[0, :_PREFIX]).all():
        return None
    return np.ascontiguousarray(rows[:, _PREFIX:]), np.arange(count + 1, dtype=np.int32) * first


def _element_bounds(buffer: np.ndarray, count: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `count` length-prefixed elements starts and ends, checking that they fill `buffer`.

    Each element's start depends on the one before, which would take a loop over rows. Instead
    every byte position gets the position an element starting there would end at (`step`), and
    the starts are built by doubling: with the first m starts and `step` applied m times, the
    next m starts are one lookup away (log2(count) rounds of two numpy lookups).
    """
    size = len(buffer)
    if count == 0:
        if size:
            raise TensorError(f"input {name!r} has no elements but {size} bytes of binary data.")
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if size < _PREFIX:
        raise TensorError(f"input {name!r}: {size} bytes cannot hold a BYTES element's 4-byte length.")
    # step[p]: where an element starting at p ends; `size` for the exact end, `size + 1` for an
    # element that would run past it (both map to themselves, so an overrun stays visible).
    step = np.full(size + 2, size + 1, dtype=np.int64)
    for phase in range(_PREFIX):  # the little-endian length at every byte position, 4 strided reads
        lengths = np.frombuffer(buffer, dtype="<u4", count=(size - phase) // _PREFIX, offset=phase)
        step[phase : phase + len(lengths) * _PREFIX : _PREFIX] = lengths
    reachable = step[: size - _PREFIX + 1]
    reachable += np.arange(_PREFIX, size + 1, dtype=np.int64)
    np.minimum(reachable, size + 1, out=reachable)
    step[size - _PREFIX + 1 :] = size + 1
    step[size] = size
    starts, jump = np.zeros(1, dtype=np.int64), step
    while len(starts) < count:
        starts = np.concatenate([starts, jump[starts[: count - len(starts)]]])
        if len(starts) < count:
            jump = jump[jump]
    ends = step[starts]
    if ends[-1] != size or starts[-1] > size - _PREFIX:
        raise TensorError(
            f"input {name!r}: its {size} bytes of binary data do not hold exactly {count} length-prefixed BYTES "
            "elements (shape and data disagree)."
        )
    return starts, ends


def decode_tensors(specs: list[dict], body: memoryview, offset: int) -> tuple[dict[str, Any], int]:
    """The tensors of a V2 body's JSON part (`inputs` or `outputs`) -> name -> values in their
    shapes (numpy; an Arrow string array for binary BYTES), each from its JSON `data` or from the
    binary data that follows in `body` from `offset`, in order; and where that data ended.
    """
    values: dict[str, Any] = {}
    for spec in specs:
        name, datatype, shape = spec["name"], check_datatype(spec["name"], spec["datatype"]), spec["shape"]
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values[name] = np.asarray(spec["data"], dtype=object if datatype == "BYTES" else NUMERIC_DTYPES[datatype])
            continue
        if offset + size > len(body):
            raise TensorError(f"{name!r}: binary_data_size {size} runs past the end of the body.")
        raw, offset = body[offset : offset + size], offset + size
        if datatype == "BYTES":
            values[name] = decode_bytes(name, shape, raw)
        else:
            values[name] = decode_numeric(name, datatype, shape, raw).reshape(shape)
    return values, offset


def json_part_length(body: bytes) -> int:
    """Where a V2 body's JSON part ends, for a body kept without its `Inference-Header-Content-Length`
    (KServe's logger keeps the body alone). Latin-1 maps each byte to one character, so the
    decoder's end index is a byte offset whatever follows the JSON.

    Raises:
        ValueError: the body does not start with a JSON value.
    """
    _, end = json.JSONDecoder().raw_decode(body.decode("latin-1"))
    return end


def encode_numeric(values: np.ndarray, datatype: str) -> bytes:
    return np.ascontiguousarray(values, dtype=NUMERIC_DTYPES[datatype]).tobytes()


def encode_bytes_table(labels: list[str]) -> np.ndarray:
    """Each label as a length-prefixed BYTES element, ready to be picked by index and joined."""
    table = np.empty(len(labels), dtype=object)  # np.array() of equal-length bytes would make them fixed-width
    for i, text in enumerate(labels):
        encoded = text.encode("utf-8")
        table[i] = len(encoded).to_bytes(_PREFIX, "little") + encoded
    return table


def encode_bytes_by_index(table: np.ndarray, indices: np.ndarray) -> bytes:
    """The BYTES tensor of `table[indices]` (e.g. each row's predicted class label)."""
    return b"".join(table[indices].tolist())


def encode_bytes(values: pa.Array) -> bytes:
    """A BYTES tensor of Arrow text (no nulls): each element's 4-byte length, then its bytes."""
    values = values.cast(pa.large_string())
    count = len(values)
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=count + 1, offset=values.offset * 8)
    lengths = np.diff(offsets)
    out = np.empty(count * _PREFIX + int(lengths.sum()), dtype=np.uint8)
    starts = offsets[:-1] - offsets[0] + _PREFIX * np.arange(count, dtype=np.int64)
    prefix = (starts[:, None] + np.arange(_PREFIX)).ravel()
    out[prefix] = lengths.astype("<u4").view(np.uint8)
    keep = np.ones(len(out), dtype=bool)
    keep[prefix] = False
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    out[keep] = data[offsets[0] : offsets[-1]]
    return out.tobytes()
