"""The preprocessor spec: the versioned JSON contract between preprocessing and its readers.

`fit_preprocessor` writes it; the trainer, the predictor and evaluation read it back through
`Preprocessor.from_json`. This module owns its shape: the document a spec is written as and
the checks a spec must pass before anything is built from it, so that a tampered, truncated or
newer spec fails with the field it got wrong instead of deep inside `transform`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from mlworkloads.data.errors import DataError

SPEC_FORMAT = "mlworkloads.preprocessor"
#: Bump when a reader of the old version would misread the new one; readers refuse newer ones.
SPEC_VERSION = 1
TASKS = ("binary", "multiclass", "regression")


def spec_document(
    *,
    task: str,
    label: str,
    classes: list | None,
    numeric: list[dict[str, Any]],
    categorical: list[dict[str, Any]],
    excluded: list[dict[str, Any]],
) -> dict[str, Any]:
    """The spec as it is written to `preprocessor.json` (format and version stamped)."""
    return {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "task": task,
        "label": {"name": label, "classes": classes},
        "numeric": numeric,
        "categorical": categorical,
        "excluded": excluded,
    }


def validate_spec(spec: Any, source: str) -> None:
    """Refuses a spec that this version cannot build a preprocessor from, naming the field.

    Raises:
        DataError: `source` (a file name or "preprocessor spec") and what is wrong.
    """

    def fail(why: str) -> NoReturn:
        raise DataError(f"{source} is not a valid preprocessor spec: {why}")

    if not isinstance(spec, Mapping):
        fail(f"expected a JSON object, got {type(spec).__name__}")
    if spec.get("format") != SPEC_FORMAT:
        fail(f"format is {spec.get('format')!r}, expected {SPEC_FORMAT!r}")
    version = spec.get("version")
    if not isinstance(version, int):
        fail(f"version is {version!r}, expected an integer")
    if version > SPEC_VERSION:
        fail(
            f"version {version} was written by a newer mlworkloads (this one reads up to "
            f"{SPEC_VERSION}); upgrade mlworkloads"
        )
    if spec.get("task") not in TASKS:
        fail(f"task is {spec.get('task')!r}, expected one of {list(TASKS)}")
    label = spec.get("label")
    if not isinstance(label, Mapping) or not isinstance(label.get("name"), str):
        fail("label must be an object with a string 'name'")
    if spec["task"] != "regression" and not (isinstance(label.get("classes"), list) and len(label["classes"]) >= 2):
        fail("a classification spec needs label.classes with at least two classes")
    for entry in spec.get("numeric", []) if isinstance(spec.get("numeric"), list) else fail("numeric must be a list"):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            fail(f"numeric entry {entry!r} needs a string 'name'")
        for key in ("median", "mean", "std"):
            value = entry.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                fail(f"numeric[{entry['name']!r}].{key} is {value!r}, expected a finite number")
        if entry["std"] <= 0:
            fail(f"numeric[{entry['name']!r}].std is {entry['std']!r}, expected a positive number")
    categorical = spec.get("categorical")
    if not isinstance(categorical, list):
        fail("categorical must be a list")
    for entry in categorical:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            fail(f"categorical entry {entry!r} needs a string 'name'")
        vocabulary = entry.get("vocabulary")
        if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
            fail(f"categorical[{entry['name']!r}].vocabulary must be a list of strings")
        if len(set(vocabulary)) != len(vocabulary):
            fail(f"categorical[{entry['name']!r}].vocabulary has duplicates")
