"""Component: deterministic, stratified train/validation/test split."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def split_dataset(
    dataset: Input[Dataset],
    label_column: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    stratify: bool = True,
):
    """Splits a dataset into train, validation and test, the same way for the same seed.

    Args:
        dataset: Parquet dataset, as written by `ingest_table`.
        label_column: The target column; stratified on for classification.
        validation_fraction: Share of rows for validation, in (0, 1).
        test_fraction: Share of rows for test, in (0, 1).
        seed: Random seed; the same seed and data give the same split.
        stratify: Keep the label's class proportions in every split (turn off for regression).

    Returns:
        train: Rows to fit on.
        validation: Rows for early stopping and model selection.
        test: Held-out rows for the evaluation gate and the deploy smoke test.
    """
    from mlworkloads.data.steps import split_step

    metadata = split_step(
        dataset.path,
        {"train": train.path, "validation": validation.path, "test": test.path},
        label_column=label_column,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        stratify=stratify,
    )
    for artifact, name in ((train, "train"), (validation, "validation"), (test, "test")):
        artifact.metadata.update(metadata[name])


with_step_resources(split_dataset, "table")
