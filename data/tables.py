"""Reading tables from any URI (CSV, TSV, Parquet, JSON lines; plain, .gz or .zip) into Arrow."""

from __future__ import annotations

import gzip
import io
import os
import zipfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from mlworkloads.data.errors import DataError
from mlworkloads.data.storage import local_file, read_bytes

FORMATS = ("csv", "tsv", "parquet", "jsonl")
#: Local, uncompressed files from this size on are parsed straight from disk in blocks instead
#: of being read into memory first: the whole-file copy is what a large ingest can spare.
STREAM_BYTES = 16 * 1024 * 1024
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"PK\x03\x04")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
#: Logical type names accepted in a `schema` mapping, and the Arrow type each means.
TYPE_NAMES = {
    "int": pa.int64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float": pa.float64(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "double": pa.float64(),
    "str": pa.string(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


def detect_format(name: str) -> str:
    """Returns the table format implied by a file name (compression suffixes removed)."""
    lowered = name.lower()
    for compression in (".gz", ".zip"):
        if lowered.endswith(compression):
            lowered = lowered[: -len(compression)]
    for suffix, fmt in _SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    raise DataError(
        f"cannot tell the table format of {name!r} from its name: expected one of the suffixes "
        f"{sorted(_SUFFIXES)} (optionally .gz or .zip), or pass format= one of {list(FORMATS)}."
    )


def _decompress(uri: str, payload: bytes) -> tuple[bytes, str]:
    """Undoes .gz/.zip; returns the bytes and the name the format is detected from."""
    name = uri.rsplit("/", 1)[-1].split("?", 1)[0]
    if name.lower().endswith(".gz") or payload[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(payload), name[:-3] if name.lower().endswith(".gz") else name
        except (OSError, EOFError) as err:
            raise DataError(f"{uri!r} is not a valid gzip file: {err}") from err
    if name.lower().endswith(".zip") or payload[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(payload))
        except zipfile.BadZipFile as err:
            raise DataError(f"{uri!r} is not a valid zip file: {err}") from err
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise DataError(f"{uri!r} must hold exactly one file to read as a table, found {members!r}.")
        return archive.read(members[0]), members[0]
    return payload, name


def read_table(uri: str, fmt: str = "auto", schema: dict[str, str] | None = None) -> pa.Table:
    """Reads the table at `uri` into Arrow, casting the columns `schema` names.

    Args:
        uri: A local path or fsspec URI (file://, http(s)://, s3://, gs://).
        fmt: One of `FORMATS`, or "auto" to detect from the file name.
        schema: Optional mapping of column name to a type name in `TYPE_NAMES`.

    Raises:
        DataError: missing or unreadable file, empty file, header without rows, an unknown
            format, or a value that cannot take its declared type (naming column, row, value).
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise DataError(f"format={fmt!r} is not supported; expected 'auto' or one of {list(FORMATS)}.")
    target_types = _parse_schema(schema or {})
    source = _large_plain_file(uri)
    if source is not None:
        name = source
    else:
        source = read_bytes(uri)
        if not source:
            raise DataError(f"{uri!r} is empty (0 bytes): expected a table with a header and rows.")
        source, name = _decompress(uri, source)
        if not source or source.isspace():  # not `strip()`: it would copy the whole file to find out
            raise DataError(f"{uri!r} is empty: expected a table with a header and rows.")
    fmt = detect_format(name) if fmt == "auto" else fmt
    table = _parse(uri, source, fmt, string_columns=list(target_types))
    if table.num_rows == 0:
        raise DataError(f"{uri!r} has columns {table.column_names!r} but no data rows: expected at least one row.")
    return cast_columns(table, target_types, source=uri, header_lines=1 if fmt in ("csv", "tsv") else 0)


def _large_plain_file(uri: str) -> str | None:
    """The local path of `uri` if it is an uncompressed file of at least `STREAM_BYTES`."""
    path = local_file(uri)
    if path is None or os.path.getsize(path) < STREAM_BYTES or path.lower().endswith((".gz", ".zip")):
        return None
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    # Compressed, or blank so far: the in-memory path decompresses, or names a blank file.
    return None if head.startswith(_COMPRESSED_MAGIC) or head.isspace() else path


def _parse_schema(schema: dict[str, str]) -> dict[str, pa.DataType]:
    types = {}
    for column, type_name in schema.items():
        if str(type_name).lower() not in TYPE_NAMES:
            raise DataError(
                f"schema[{column!r}] = {type_name!r} is not a known type; expected one of {sorted(TYPE_NAMES)}."
            )
        types[column] = TYPE_NAMES[str(type_name).lower()]
    return types


def _parse(uri: str, source: bytes | str, fmt: str, string_columns: list[str]) -> pa.Table:
    """Parses the file's bytes, or the local file at the path `source`."""
    table = _parse_once(uri, source, fmt, string_columns)
    _check_parsed(uri, fmt, table)
    return table


def _parse_once(uri: str, source: bytes | str, fmt: str, string_columns: list[str], block_size: int | None = None):
    # Bytes through a zero-copy view: Arrow's multithreaded readers read it as they would a file.
    buffer = pa.BufferReader(pa.py_buffer(source)) if isinstance(source, bytes) else source
    size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    try:
        if fmt in ("csv", "tsv"):
            return pacsv.read_csv(
                buffer,
                read_options=pacsv.ReadOptions(block_size=block_size) if block_size else None,
                parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
                # Declared columns are read as text and cast afterwards, so that a bad value
                # is reported with its column name, row and value.
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in string_columns},
                    strings_can_be_null=True,
                ),
            )
        if fmt == "parquet":
            return pq.read_table(buffer)
        return pajson.read_json(buffer, read_options=pajson.ReadOptions(block_size=block_size) if block_size else None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        if "straddl" in str(err) and block_size is None:
            # A line longer than Arrow's 1 MiB block: read the whole buffer as one block.
            return _parse_once(uri, source, fmt, string_columns, block_size=min(size + 1, 2**31 - 1))
        # Arrow quotes the offending bytes; keep the message printable whatever the file holds.
        detail = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(err)[:200])
        raise DataError(f"cannot parse {uri!r} as {fmt} (is it really {fmt}?): {detail}") from err


def _check_parsed(uri: str, fmt: str, table: pa.Table) -> None:
    """Refuses what parsed but cannot be what the user meant, naming the problem."""
    names = table.column_names
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise DataError(f"{uri!r} has duplicated column names {sorted(duplicated)!r}: rename them so each is unique.")
    if fmt in ("csv", "tsv") and table.num_columns == 1:
        header = table.column_names[0]
        for delimiter, label in ((";", "';'"), ("|", "'|'"), ("\t", "tab")):
            if delimiter in header:
                expected = "tab" if fmt == "tsv" else "comma"
                raise DataError(
                    f"{uri!r} parsed as a single column {header[:80]!r}: it looks delimited by {label}, not "
                    f"{expected}. Convert it to CSV, or pass format='tsv' if it is tab-delimited."
                )
    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            row = _first_invalid_utf8(table[field.name])
            raise DataError(
                f"column {field.name!r} of {uri!r} is not UTF-8 text (first at row {row + 1}): re-encode the "
                "file as UTF-8."
            )


def _first_invalid_utf8(column) -> int:
    for index, value in enumerate(column.to_pylist()):
        if value is not None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return index
    return 0


def cast_columns(table: pa.Table, types: dict[str, pa.DataType], source: str, header_lines: int = 0) -> pa.Table:
    """Casts the named columns, naming column, row and value when one cannot take its type."""
    for column, target in types.items():
        if column not in table.column_names:
            raise DataError(
                f"schema names column {column!r}, which {source!r} does not have; "
                f"its columns are {table.column_names!r}."
            )
        values = table[column]
        if values.type == target:
            continue
        if pa.types.is_string(values.type) and pa.types.is_boolean(target):
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
            values = pc.if_else(
                pc.is_in(lowered, pa.array(["true", "1", "yes", "t", "y"])),
                True,
                pc.if_else(pc.is_in(lowered, pa.array(["false", "0", "no", "f", "n"])), False, None),
            )
            bad = pc.and_(pc.invert(pc.is_null(table[column])), pc.is_null(values))
            if pc.any(bad).as_py():
                _raise_bad_value(table, column, target, bad, source, header_lines)
            table = table.set_column(table.column_names.index(column), column, values)
            continue
        try:
            cast = pc.cast(values, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            bad = _uncastable_mask(values, target)
            _raise_bad_value(table, column, target, bad, source, header_lines, err)
        table = table.set_column(table.column_names.index(column), column, cast)
    return table


def _uncastable_mask(values: pa.ChunkedArray, target: pa.DataType) -> pa.Array:
    # Error path only: find which values fail, one at a time.
    flags = []
    for value in values.to_pylist():
        try:
            pc.cast(pa.array([value]), target)
            flags.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            flags.append(True)
    return pa.array(flags)


def _raise_bad_value(table, column, target, bad, source, header_lines, err=None):
    indices = pc.indices_nonzero(pc.fill_null(bad, False)) if len(bad) else pa.array([])
    if len(indices) == 0:
        raise DataError(f"column {column!r} of {source!r} cannot be cast to {target}: {err}") from err
    row = indices[0].as_py()
    value = table[column][row].as_py()
    line = f" (line {row + 1 + header_lines} of the file)" if header_lines else ""
    raise DataError(
        f"column {column!r}, row {row + 1}{line} of {source!r}: value {value!r} cannot be read as "
        f"{target} as the schema declares; {len(indices)} value(s) in that column fail. Fix the "
        f"data or declare the column as 'string'."
    ) from err
