"""Binary tensors, checked against Triton's and KServe's own encoders and decoders."""

import numpy as np
import pytest
from kserve.protocol.infer_type import deserialize_bytes_tensor
from tritonclient.utils import serialize_byte_tensor

from mlworkloads.data import tensors
from mlworkloads.data.errors import TensorError


def _triton_bytes(values: list[str]) -> bytes:
    if not values:
        return b""  # Triton's encoder gives an empty array for no elements
    return serialize_byte_tensor(np.array([v.encode() for v in values], dtype=object)).item()


@pytest.mark.parametrize("datatype", sorted(tensors.NUMERIC_DTYPES))
def test_numeric_tensors_decode_to_their_values(datatype):
    values = (np.arange(12) % 2 == 0) if datatype == "BOOL" else np.arange(12).astype(tensors.NUMERIC_DTYPES[datatype])
    decoded = tensors.decode_numeric("x", datatype, [3, 4], values.tobytes())
    np.testing.assert_array_equal(decoded, values)
    assert tensors.encode_numeric(decoded, datatype) == values.tobytes()


def test_a_numeric_tensor_of_the_wrong_size_names_the_input_and_both_sizes():
    with pytest.raises(TensorError, match=r"input 'distance' has 20 bytes .* shape \[3\] of FP64 needs 24"):
        tensors.decode_numeric("distance", "FP64", [3], bytes(20))


@pytest.mark.parametrize(
    "values",
    [
        ["UA", "AA", "DL"],  # one length: the uniform path
        ["N14228", "N24211", "", "N619AA", "7", "ÉTÉ-ü"],  # lengths differ, empty and non-ASCII text
        ["x" * 300, "y", "z" * 70000],  # lengths over one byte of the 4-byte prefix
        [""] * 5,
    ],
)
def test_bytes_tensors_decode_as_triton_encodes_them(values):
    decoded = tensors.decode_bytes("tailnum", [len(values)], _triton_bytes(values))
    assert decoded.to_pylist() == values


def test_bytes_tensors_of_every_size_up_to_a_large_batch_match_kserves_decoder():
    rng = np.random.default_rng(3)
    for count in [1, 2, 3, 7, 64, 255, 256, 257, 1000, 4096]:
        values = ["".join(rng.choice(list("abcdé"), size=rng.integers(0, 12))) for _ in range(count)]
        raw = _triton_bytes(values)
        decoded = tensors.decode_bytes("v", [count, 1], raw).to_pylist()
        assert decoded == [b.decode() for b in deserialize_bytes_tensor(raw)] == values


@pytest.mark.parametrize(
    ("raw", "count", "message"),
    [
        (_triton_bytes(["a", "bc"]), 3, "do not hold exactly 3"),  # fewer elements than the shape says
        (_triton_bytes(["a", "bc", "d"]), 2, "do not hold exactly 2"),  # bytes left over
        (_triton_bytes(["abc"])[:-1], 1, "do not hold exactly 1"),  # the last element cut short
        (b"\x05\x00", 1, "cannot hold a BYTES element's 4-byte length"),
        (b"\xff\xff\xff\xff" + b"abc", 1, "do not hold exactly 1"),  # a length past the end
        (_triton_bytes(["a"]), 0, "no elements but 5 bytes"),
        (b"\x02\x00\x00\x00\xff\xfe", 1, "must be UTF-8 text"),
    ],
)
def test_a_bytes_tensor_that_disagrees_with_its_shape_is_refused_by_name(raw, count, message):
    with pytest.raises(TensorError, match=message) as err:
        tensors.decode_bytes("tailnum", [count], raw)
    assert "'tailnum'" in str(err.value)


def test_labels_encode_as_a_bytes_tensor_triton_reads():
    table = tensors.encode_bytes_table(["False", "True", "é"])
    raw = tensors.encode_bytes_by_index(table, np.array([1, 0, 2, 1]))
    assert [b.decode() for b in deserialize_bytes_tensor(raw)] == ["True", "False", "é", "True"]


@pytest.mark.parametrize(
    ("shape", "message"), [([-1], "whole numbers >= 0"), ([2.5], "whole numbers >= 0"), ("3", "must be a list")]
)
def test_a_bad_shape_is_refused_by_name(shape, message):
    with pytest.raises(TensorError, match=message):
        tensors.element_count("month", shape)


def test_an_unknown_datatype_is_refused_by_name():
    with pytest.raises(TensorError, match="input 'month' has datatype 'FLOAT'"):
        tensors.check_datatype("month", "FLOAT")


@pytest.mark.parametrize("values", [["UA", "N14228", "", "ÉTÉ"], [], ["x" * 300] * 3])
def test_text_encodes_as_triton_encodes_it(values):
    import pyarrow as pa

    column = pa.array(["before", *values], pa.string()).slice(1)  # an offset into the buffers, as slices have
    assert tensors.encode_bytes(column) == _triton_bytes(values)
    assert tensors.decode_bytes("v", [len(values)], tensors.encode_bytes(column)).to_pylist() == values
