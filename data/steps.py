"""The data steps as plain functions over file paths: what the data components call.

Each step computes everything in memory first and then writes its outputs atomically, so a
step that fails leaves no output file behind.
"""

from __future__ import annotations

import contextlib
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from mlworkloads.data import preprocessor as pre
from mlworkloads.data.errors import DataError
from mlworkloads.data.ingest import IngestConfig, ingest
from mlworkloads.data.report import data_report
from mlworkloads.data.split import split_table
from mlworkloads.data.storage import atomic_local_path

log = logging.getLogger(__name__)


def write_outputs(texts: dict[str, str] | None = None, tables: dict[str, pa.Table] | None = None) -> None:
    """Writes every output beside its final path, then moves them all into place."""
    with contextlib.ExitStack() as stack:
        for path, text in (texts or {}).items():
            with open(stack.enter_context(atomic_local_path(path)), "w", encoding="utf-8") as f:
                f.write(text)
        for path, table in (tables or {}).items():
            pq.write_table(table, stack.enter_context(atomic_local_path(path)))


def read_parquet(path: str, what: str) -> pa.Table:
    """Reads an input Parquet artifact, naming it when it is absent or corrupt."""
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"cannot read the {what} dataset at {path!r}: {err}") from err


def table_metadata(table: pa.Table) -> dict:
    """Row count and schema, for an artifact's metadata (shown in the KFP UI)."""
    return {
        "rows": table.num_rows,
        "columns": table.num_columns,
        "schema": {f.name: str(f.type) for f in table.schema},
    }


def ingest_step(config: IngestConfig, dataset_path: str, report_path: str) -> dict:
    """Ingests `config.source_uri` to a Parquet file and a Markdown data report."""
    table = ingest(config)
    report = data_report(table, config.source_uri, config.label_column)
    write_outputs(texts={report_path: report}, tables={dataset_path: table})
    log.info("ingested %d rows x %d columns from %s", table.num_rows, table.num_columns, config.source_uri)
    return table_metadata(table)


def split_step(
    dataset_path: str,
    outputs: dict[str, str],
    label_column: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    stratify: bool,
) -> dict[str, dict]:
    """Splits the dataset; `outputs` maps "train"/"validation"/"test" to their paths."""
    table = read_parquet(dataset_path, "input")
    splits = split_table(table, label_column, validation_fraction, test_fraction, seed, stratify)
    write_outputs(tables={outputs[name]: splits[name] for name in splits})
    log.info(
        "split %d rows into %s", table.num_rows, ", ".join(f"{name} {split.num_rows}" for name, split in splits.items())
    )
    return {name: table_metadata(split) for name, split in splits.items()}


def preprocess_step(
    split_paths: dict[str, str],
    options: pre.PreprocessorOptions,
    preprocessor_path: str,
    feature_paths: dict[str, str],
) -> dict:
    """Fits the preprocessor on train, applies it to every split, writes spec and features."""
    splits = {name: read_parquet(path, name) for name, path in split_paths.items()}
    fitted = pre.fit(splits["train"], options)
    tables = {}
    for name, table in splits.items():
        try:
            features = fitted.transform(table)
            labels = fitted.encode_labels(table[options.label_column])
        except DataError as err:
            raise DataError(f"{name} split: {err}") from err
        tables[feature_paths[name]] = fitted.to_table(features, labels)
    write_outputs(texts={preprocessor_path: fitted.to_json()}, tables=tables)
    log.info(
        "fitted the preprocessor on %d rows: %d numeric and %d categorical features (%s task)",
        splits["train"].num_rows,
        len(fitted.numeric),
        len(fitted.categorical),
        fitted.task,
    )
    return {
        "task": fitted.task,
        "numeric_columns": [c["name"] for c in fitted.numeric],
        "categorical_columns": [c["name"] for c in fitted.categorical],
        "excluded_columns": json.loads(json.dumps(fitted.excluded)),
        "classes": fitted.classes,
    }


def prediction_logs_step(logs_uri: str, dataset_path: str, report_path: str, reference_path: str = "") -> dict:
    """Logged predictions under `logs_uri` -> a Parquet table (one row per instance) and a data
    report; with a reference table (the training split), the report compares each feature's live
    distribution with it."""
    from mlworkloads.data.drift import drift_markdown, feature_drift
    from mlworkloads.data.events import EVENT_ID, EVENT_TIME, ROW, events_table, read_events

    table, summary = events_table(read_events(logs_uri))
    if table.num_rows == 0:
        raise DataError(f"the logged events under {logs_uri!r} hold no request rows ({summary}).")
    report = data_report(table, logs_uri)
    report += "\n## Logged events\n\n" + "\n".join(
        f"- {key.replace('_', ' ')}: {value:,}" for key, value in summary.items()
    )
    report += "\n"
    if reference_path:
        reference = read_parquet(reference_path, "reference")
        logged = {EVENT_ID, EVENT_TIME, ROW}
        features = [c for c in reference.column_names if c in table.column_names and c not in logged]
        if not features:
            raise DataError(
                f"the reference table shares no feature with the logged requests: it has {reference.column_names}, "
                f"the logs {table.column_names}."
            )
        report += "\n" + drift_markdown(feature_drift(table, reference, features), reference_path)
    write_outputs(texts={report_path: report}, tables={dataset_path: table})
    log.info("read %d logged rows from %s (%s)", table.num_rows, logs_uri, summary)
    return {**table_metadata(table), **summary}
