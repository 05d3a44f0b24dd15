"""Deterministic train/validation/test split, stratified on the label for classification."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlworkloads.data.errors import DataError

SPLITS = ("train", "validation", "test")


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    """Refuses fractions outside (0, 1) or adding up to leave nothing for train."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise DataError(f"{name}={value!r}: expected a number strictly between 0 and 1.")
    if validation_fraction + test_fraction >= 1:
        raise DataError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction!r} leaves "
            "no rows for train: their sum must be below 1."
        )


def split_indices(
    n_rows: int,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    strata: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Row indices of each split; each stratum is cut in the same proportions.

    Indices come back sorted so that the splits keep the source's row order.
    """
    assignment = _assignment(n_rows, validation_fraction, test_fraction, seed, strata)
    return {name: np.flatnonzero(assignment == number) for number, name in enumerate(SPLITS)}


def _assignment(
    n_rows: int, validation_fraction: float, test_fraction: float, seed: int, strata: np.ndarray | None
) -> np.ndarray:
    """The split number (index into `SPLITS`) of every row: linear, no sorting."""
    check_fractions(validation_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    groups = [np.arange(n_rows)] if strata is None else _groups(strata)
    assignment = np.empty(n_rows, dtype=np.int8)
    train, validation, test = range(len(SPLITS))
    for group in groups:
        shuffled = rng.permutation(group)
        n_test = int(round(len(shuffled) * test_fraction))
        n_val = int(round(len(shuffled) * validation_fraction))
        assignment[shuffled[:n_test]] = test
        assignment[shuffled[n_test : n_test + n_val]] = validation
        assignment[shuffled[n_test + n_val :]] = train
    return assignment


def _groups(strata: np.ndarray) -> list[np.ndarray]:
    if strata.dtype.kind in "iu" and len(strata) and strata.min() >= 0 and strata.max() < 256:
        # Class codes (what `split_table` passes): one linear scan per class beats sorting.
        groups = (np.flatnonzero(strata == code) for code in range(int(strata.max()) + 1))
        return [group for group in groups if len(group)]
    _, inverse = np.unique(strata, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    boundaries = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, boundaries)


def split_table(
    table: pa.Table,
    label_column: str,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    stratify: bool = True,
) -> dict[str, pa.Table]:
    """Splits `table` into train, validation and test.

    Args:
        table: The ingested table.
        label_column: The target; stratified on when `stratify` is true.
        validation_fraction: Share of rows (of each class, when stratified) for validation.
        test_fraction: Share of rows for test.
        seed: Same seed, same table, same split.
        stratify: Keep the label's class proportions in every split (classification).

    Raises:
        DataError: a missing label, a label with one class, or a split left empty or without
            some class in train.
    """
    if label_column not in table.column_names:
        raise DataError(f"label_column {label_column!r} is not in the table; its columns are {table.column_names!r}.")
    strata = None
    if stratify:
        labels = table[label_column]
        classes = pc.unique(labels)
        if len(classes) < 2:
            raise DataError(
                f"label_column {label_column!r} has a single class {classes.to_pylist()!r} in "
                f"{table.num_rows} rows: a classifier needs at least two. Check the label "
                "derivation, or set stratify=False for a regression target."
            )
        strata = pc.index_in(labels, value_set=classes).to_numpy(zero_copy_only=False)
    assignment = _assignment(table.num_rows, validation_fraction, test_fraction, seed, strata)
    masks = {name: assignment == number for number, name in enumerate(SPLITS)}
    for name, mask in masks.items():
        if not mask.any():
            raise DataError(
                f"the {name} split would be empty ({table.num_rows} rows, validation_fraction="
                f"{validation_fraction}, test_fraction={test_fraction}): use more rows or larger fractions."
            )
    if strata is not None:
        in_train = np.bincount(strata[masks["train"]], minlength=len(classes))
        missing = np.flatnonzero((in_train == 0) & (np.bincount(strata, minlength=len(classes)) > 0))
        if len(missing):
            names = [classes[int(i)].as_py() for i in missing]
            raise DataError(f"class(es) {names!r} of {label_column!r} are absent from train: too few rows.")
    # Selecting by mask keeps the source order and costs less than `take` across the chunks.
    return {name: table.filter(pa.array(mask)) for name, mask in masks.items()}
