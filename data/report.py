"""The data report (Markdown) that the KFP UI shows for an ingested table."""

from __future__ import annotations

import pyarrow as pa

from mlworkloads.data.ingest import column_summary, value_counts


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def data_report(table: pa.Table, source: str, label_column: str = "") -> str:
    """Renders rows, columns, types, nulls, label distribution and numeric summaries."""
    lines = [
        f"# Data report: `{source}`",
        "",
        f"**{table.num_rows:,} rows**, **{table.num_columns} columns**.",
        "",
        "| column | type | nulls | min | mean | max |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for entry in column_summary(table):
        lines.append(
            f"| `{entry['name']}` | {entry['type']} | {entry['nulls']:,} | {_fmt(entry.get('min'))} "
            f"| {_fmt(entry.get('mean'))} | {_fmt(entry.get('max'))} |"
        )
    if label_column and label_column in table.column_names:
        lines += ["", f"## Label `{label_column}`", "", "| value | rows | share |", "| --- | ---: | ---: |"]
        for value, count in value_counts(table[label_column]):
            lines.append(f"| {value} | {count:,} | {count / table.num_rows:.1%} |")
    return "\n".join(lines) + "\n"
