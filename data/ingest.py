"""Ingestion: read a table, declare types, derive the label, drop leaking columns, filter rows."""

from __future__ import annotations

import dataclasses
import logging
import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlworkloads.data.errors import DataError
from mlworkloads.data.tables import FORMATS, read_table

log = logging.getLogger(__name__)


@dataclasses.dataclass(kw_only=True)
class IngestConfig:
    """What to read and how to shape it; validated on construction.

    Attributes:
        source_uri: Local path or fsspec URI of the table.
        format: "auto" or one of `FORMATS`.
        schema: Column name -> type name, cast after reading (see `tables.TYPE_NAMES`).
        label_column: Column that must exist after derivation (the training target).
        derived_columns: New column name -> pandas expression over existing columns,
            evaluated in order (for example `{"late": "arr_delay > 15"}`).
        drop_columns: Columns removed after derivation (for example those that leak the label).
        row_filter: pandas expression selecting the rows to keep (for example
            `"arr_delay.notna()"`); rows where it is null are dropped too.
        max_rows: Keep at most this many rows (first rows, after filtering); 0 keeps all.
    """

    source_uri: str
    format: str = "auto"
    schema: dict[str, str] = dataclasses.field(default_factory=dict)
    label_column: str = ""
    derived_columns: dict[str, str] = dataclasses.field(default_factory=dict)
    drop_columns: list[str] = dataclasses.field(default_factory=list)
    row_filter: str = ""
    max_rows: int = 0

    def __post_init__(self):
        if not self.source_uri:
            raise DataError("source_uri is empty: give a local path or a URI of the table.")
        if self.format != "auto" and self.format not in FORMATS:
            raise DataError(f"format={self.format!r}: expected 'auto' or one of {list(FORMATS)}.")
        if self.max_rows < 0:
            raise DataError(f"max_rows={self.max_rows!r}: expected 0 (all rows) or a positive count.")
        if self.label_column and self.label_column in self.drop_columns:
            raise DataError(f"label_column {self.label_column!r} is also in drop_columns: remove it from one.")


def ingest(config: IngestConfig) -> pa.Table:
    """Reads and shapes the table as `config` says; see `IngestConfig`.

    Raises:
        DataError: for any problem with the source or the configuration, naming it.
    """
    table = read_table(config.source_uri, config.format, config.schema)
    keep = None
    if config.derived_columns or config.row_filter:
        table, keep = _evaluate(table, config)
    missing = [c for c in config.drop_columns if c not in table.column_names]
    if missing:
        raise DataError(
            f"drop_columns names {missing!r}, which the table does not have; its columns are {table.column_names!r}."
        )
    # Dropped before filtering, so that the filtered copy holds only the kept columns.
    table = table.drop_columns(config.drop_columns)
    if keep is not None:
        log.info("row_filter %r drops %d of %d rows", config.row_filter, len(keep) - pc.sum(keep).as_py(), len(keep))
        table = table.filter(keep)
    if config.max_rows:
        table = table.slice(0, config.max_rows)
    if config.label_column:
        if config.label_column not in table.column_names:
            raise DataError(
                f"label_column {config.label_column!r} is not in the table; its columns are "
                f"{table.column_names!r}. Derive it with derived_columns or fix the name."
            )
        nulls = table[config.label_column].null_count
        if nulls:
            raise DataError(
                f"label_column {config.label_column!r} is null in {nulls} of {table.num_rows} rows: "
                "filter them out with row_filter (for example "
                f"'{config.label_column}.notna()')."
            )
    if table.num_rows == 0:
        raise DataError(f"no rows of {config.source_uri!r} are left after row_filter {config.row_filter!r}.")
    return table


def _referenced(table: pa.Table, expressions: list[str]) -> list[str]:
    """The table's columns an expression may use (names appearing as words in it)."""
    text = " ".join(expressions)
    return [name for name in table.column_names if re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text)]


def _evaluate(table: pa.Table, config: IngestConfig) -> tuple[pa.Table, pa.Array | None]:
    """The table with its derived columns, and the row filter's mask (None without a filter)."""
    # Only the columns the expressions name go through pandas (Arrow-backed, so a comparison
    # with a null stays null); results come back as Arrow columns and filters as an Arrow mask.
    expressions = [*config.derived_columns.values(), config.row_filter]
    frame = table.select(_referenced(table, expressions)).to_pandas(types_mapper=pd.ArrowDtype)
    for name, expression in config.derived_columns.items():
        try:
            frame[name] = frame.eval(expression, engine="python")
        except Exception as err:  # noqa: BLE001 - pandas raises many types for a bad expression
            raise DataError(
                f"derived_columns[{name!r}] = {expression!r} cannot be evaluated: "
                f"{type(err).__name__}: {err}. Columns available: {table.column_names!r}."
            ) from err
        values = pa.Array.from_pandas(frame[name])
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, values)
        else:
            table = table.append_column(name, values)
    if config.row_filter:
        try:
            keep = frame.eval(config.row_filter, engine="python")
        except Exception as err:  # noqa: BLE001
            raise DataError(
                f"row_filter {config.row_filter!r} cannot be evaluated: {type(err).__name__}: {err}. "
                f"Columns available: {table.column_names!r}."
            ) from err
        if not (isinstance(keep, pd.Series) and pd.api.types.is_bool_dtype(keep.dtype)):
            raise DataError(f"row_filter {config.row_filter!r} must give one true/false per row.")
        return table, pa.Array.from_pandas(keep.fillna(False).astype(bool))
    return table, None


def column_summary(table: pa.Table) -> list[dict]:
    """One dict per column: name, type, nulls and, for numbers, min/mean/max."""
    rows = []
    for name in table.column_names:
        column = table[name]
        entry = {"name": name, "type": str(column.type), "nulls": column.null_count}
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            stats = pc.min_max(column)
            entry.update(min=stats["min"].as_py(), mean=pc.mean(column).as_py(), max=stats["max"].as_py())
        rows.append(entry)
    return rows


def value_counts(column: pa.ChunkedArray, limit: int = 20) -> list[tuple[object, int]]:
    """The most frequent values of a column with their counts, most frequent first."""
    counts = pc.value_counts(column).to_pylist()
    counts.sort(key=lambda item: (-item["counts"], str(item["values"])))
    return [(item["values"], item["counts"]) for item in counts[:limit]]
