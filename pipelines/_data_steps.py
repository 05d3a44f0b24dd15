"""The data half every pipeline starts with: ingest -> split -> preprocess."""

from __future__ import annotations

import dataclasses

from kfp import dsl
from mlworkloads.components import fit_preprocessor, ingest_table, split_dataset


@dataclasses.dataclass
class DataTasks:
    ingest: dsl.PipelineTask
    split: dsl.PipelineTask
    preprocess: dsl.PipelineTask


def add_data_steps(
    *,
    source_uri,
    label_column,
    derived_columns,
    drop_columns,
    row_filter,
    max_rows,
    validation_fraction,
    test_fraction,
    seed,
    categorical_columns,
    max_categories,
) -> DataTasks:
    """Adds the three data tasks to the pipeline being defined (arguments are its channels)."""
    ingest = ingest_table(
        source_uri=source_uri,
        label_column=label_column,
        derived_columns=derived_columns,
        drop_columns=drop_columns,
        row_filter=row_filter,
        max_rows=max_rows,
    )
    # Reading a remote table is the step most exposed to passing network and storage faults.
    ingest.set_retry(num_retries=2, backoff_duration="30s", backoff_factor=2.0)
    split = split_dataset(
        dataset=ingest.outputs["dataset"],
        label_column=label_column,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    preprocess = fit_preprocessor(
        train=split.outputs["train"],
        validation=split.outputs["validation"],
        test=split.outputs["test"],
        label_column=label_column,
        categorical_columns=categorical_columns,
        max_categories=max_categories,
    )
    return DataTasks(ingest=ingest, split=split, preprocess=preprocess)
