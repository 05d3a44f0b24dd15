"""Component: fit the preprocessor on train and apply it to every split."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def fit_preprocessor(
    train: Input[Dataset],
    validation: Input[Dataset],
    test: Input[Dataset],
    label_column: str,
    preprocessor: Output[Artifact],
    train_features: Output[Dataset],
    validation_features: Output[Dataset],
    test_features: Output[Dataset],
    task: str = "auto",
    categorical_columns: Optional[list] = None,
    numeric_columns: Optional[list] = None,
    exclude_columns: Optional[list] = None,
    max_categories: int = 100,
):
    """Fits the preprocessor on train only and transforms train, validation and test.

    Numeric columns get median imputation, a missing flag and standardisation; categorical
    columns a top-K vocabulary with an out-of-vocabulary bucket; the label is encoded for
    classification and kept numeric for regression. Identifier-like, free-text and constant
    columns are excluded, and the reason recorded.

    Args:
        train: Train split (raw columns).
        validation: Validation split (raw columns).
        test: Test split (raw columns).
        label_column: The target column.
        task: "auto", "binary", "multiclass" or "regression".
        categorical_columns: Columns to treat as categorical whatever their type.
        numeric_columns: Columns to treat as numeric.
        exclude_columns: Columns never used as features.
        max_categories: Vocabulary size (top-K values) per categorical column.

    Returns:
        preprocessor: The fitted preprocessor as versioned JSON (never pickle); the trainer
            and the predictor apply it with the same code.
        train_features: Model inputs and encoded label for train, as Parquet.
        validation_features: The same for validation.
        test_features: The same for test.
    """
    from mlworkloads.data.preprocessor import PreprocessorOptions
    from mlworkloads.data.steps import preprocess_step

    options = PreprocessorOptions(
        label_column=label_column,
        task=task,
        categorical_columns=categorical_columns or [],
        numeric_columns=numeric_columns or [],
        exclude_columns=exclude_columns or [],
        max_categories=max_categories,
    )
    summary = preprocess_step(
        {"train": train.path, "validation": validation.path, "test": test.path},
        options,
        preprocessor.path,
        {"train": train_features.path, "validation": validation_features.path, "test": test_features.path},
    )
    preprocessor.metadata.update(summary)


with_step_resources(fit_preprocessor, "table")
