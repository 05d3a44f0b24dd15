import gzip
import io
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlworkloads.data import tables
from mlworkloads.data.errors import DataError
from mlworkloads.data.flights import FLIGHTS_ROWS, FLIGHTS_URI, flights_path
from mlworkloads.data.tables import read_table

CSV = "carrier,distance,delay\nUA,1400,3.5\nAA,,-2\nB6,900,\n"


@pytest.fixture(autouse=True, params=["in memory", "streamed from disk"])
def read_mode(request, monkeypatch):
    """Every test twice: local files read into memory, and parsed from disk as large ones are."""
    if request.param == "streamed from disk":
        monkeypatch.setattr(tables, "STREAM_BYTES", 1)
    return request.param


def _write_variants(directory):
    """The same three-row table in every supported format and compression."""
    table = pa.table({"carrier": ["UA", "AA", "B6"], "distance": [1400, None, 900], "delay": [3.5, -2.0, None]})
    (directory / "t.csv").write_text(CSV)
    (directory / "t.tsv").write_text(CSV.replace(",", "\t"))
    pq.write_table(table, directory / "t.parquet")
    (directory / "t.jsonl").write_text(
        '{"carrier":"UA","distance":1400,"delay":3.5}\n{"carrier":"AA","distance":null,"delay":-2}\n'
        '{"carrier":"B6","distance":900,"delay":null}\n'
    )
    (directory / "t.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    with zipfile.ZipFile(directory / "t.tsv.zip", "w") as z:
        z.writestr("inner.tsv", CSV.replace(",", "\t"))


@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.parquet", "t.jsonl", "t.csv.gz", "t.tsv.zip"])
def test_read_table_reads_every_format_and_compression_to_the_same_rows(tmp_path, name):
    _write_variants(tmp_path)
    table = read_table(str(tmp_path / name))
    assert table.column("carrier").to_pylist() == ["UA", "AA", "B6"]
    assert table.column("distance").to_pylist() == [1400, None, 900]
    assert table.column("delay").to_pylist() == [3.5, -2.0, None]


def test_read_table_accepts_file_uri_and_explicit_format(tmp_path):
    (tmp_path / "data.txt").write_text(CSV)
    table = read_table(f"file://{tmp_path}/data.txt", fmt="csv")
    assert table.num_rows == 3


def test_read_table_reads_the_real_flights_table_by_sample_uri_and_by_path():
    assert read_table(FLIGHTS_URI).num_rows == FLIGHTS_ROWS
    assert read_table(flights_path()).num_rows == FLIGHTS_ROWS


def test_read_table_over_http_from_a_local_server(http_dir):
    root, base = http_dir
    (root / "t.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    assert read_table(f"{base}/t.csv.gz").num_rows == 3


def test_read_table_from_s3_through_moto_server(s3_bucket):
    import s3fs

    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2, 3]}), buffer)
    s3fs.S3FileSystem().pipe(f"{s3_bucket}/dir/t.parquet", buffer.getvalue())
    assert read_table(f"s3://{s3_bucket}/dir/t.parquet").column("x").to_pylist() == [1, 2, 3]


def test_read_table_casts_declared_schema(tmp_path):
    (tmp_path / "t.csv").write_text("id,flag,when\n007,yes,2013-01-01\n010,no,2013-01-02\n")
    table = read_table(str(tmp_path / "t.csv"), schema={"id": "string", "flag": "bool", "when": "date"})
    assert table.column("id").to_pylist() == ["007", "010"]
    assert table.column("flag").to_pylist() == [True, False]
    assert pa.types.is_date32(table.schema.field("when").type)


@pytest.mark.parametrize(
    ("setup", "uri_suffix", "kwargs", "message"),
    [
        (None, "absent.csv", {}, "file not found"),
        ("", "t.csv", {}, "is empty"),
        ("\n  \n\t\n", "t.csv", {}, "empty"),
        ("a,b\n", "t.csv", {}, "no data rows"),
        (CSV, "t.xlsx", {}, "cannot tell the table format"),
        (CSV, "t.csv", {"fmt": "xml"}, "format='xml' is not supported"),
        ("a,b\n1,2\n3,oops\n", "t.csv", {"schema": {"b": "int"}}, "column 'b', row 2 (line 3 of the file)"),
        ("a,b\n1,2\n", "t.csv", {"schema": {"b": "decimal"}}, "schema['b'] = 'decimal' is not a known type"),
        ("a,b\n1,2\n", "t.csv", {"schema": {"c": "int"}}, "schema names column 'c'"),
        ("a,b\n1,maybe\n", "t.csv", {"schema": {"b": "bool"}}, "value 'maybe' cannot be read as bool"),
        (b"\x1f\x8bnot-gzip", "t.csv.gz", {}, "not a valid gzip file"),
    ],
)
def test_read_table_refuses_bad_input_naming_the_problem(tmp_path, setup, uri_suffix, kwargs, message):
    path = tmp_path / uri_suffix
    if isinstance(setup, bytes):
        path.write_bytes(setup)
    elif setup is not None:
        path.write_text(setup)
    with pytest.raises(DataError) as err:
        read_table(str(path), **kwargs)
    assert message in str(err.value)


def test_read_table_names_the_value_that_breaks_a_declared_type(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"value 'oops' cannot be read as int64"):
        read_table(str(tmp_path / "t.csv"), schema={"b": "int"})


def test_read_table_reports_an_unreachable_url(http_dir):
    _, base = http_dir
    with pytest.raises(DataError, match="file not found|cannot read"):
        read_table(f"{base}/missing.csv")
    with pytest.raises(DataError, match="cannot read 'http://127.0.0.1:9/t.csv'"):
        read_table("http://127.0.0.1:9/t.csv")


def test_read_table_refuses_a_zip_with_several_files(tmp_path):
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as z:
        z.writestr("a.csv", CSV)
        z.writestr("b.csv", CSV)
    with pytest.raises(DataError, match="exactly one file"):
        read_table(str(tmp_path / "t.zip"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)) * 8, "cannot parse"),
        (b"a;b;c\n1;2;3\n", "it looks delimited by ';'"),
        (b"a|b\n1|2\n", "it looks delimited by '|'"),
        ("name,city\nJos\xe9,M\xfcnchen\n".encode("latin-1"), "column 'name' of"),
        (b"a,b,a\n1,2,3\n", "duplicated column names ['a']"),
    ],
)
def test_read_table_refuses_files_that_parse_into_something_else(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_table(str(path))
    assert message in str(err.value)
    assert str(err.value).isprintable()


def test_read_table_reads_a_line_longer_than_arrows_block_and_10000_columns(tmp_path):
    (tmp_path / "long.csv").write_bytes(b"a,b\n" + b"x" * 3_000_000 + b",1\n")
    assert read_table(str(tmp_path / "long.csv")).column("b").to_pylist() == [1]
    wide = ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" for _ in range(10_000)) + "\n"
    (tmp_path / "wide.csv").write_text(wide)
    assert read_table(str(tmp_path / "wide.csv")).num_columns == 10_000
