"""Drift: how far each feature's distribution in one table (what a model saw live) is from
another's (the training split), as the population stability index (PSI).

Numbers are binned at the reference's deciles; categories are the reference's most frequent
values and an "other" bucket; nulls are a bucket of their own in both. PSI = sum over buckets of
(live - reference) * ln(live / reference), with empty buckets counted as 0.0001 of the rows. The
usual reading: under 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 shifted.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlworkloads.data.errors import DataError

STABLE, MODERATE = 0.1, 0.25
BINS = 10
TOP_CATEGORIES = 20
_FLOOR = 1e-4  # share given to an empty bucket, so that ln() stays finite


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # "numeric" or "categorical"
    psi: float
    live_null_share: float
    reference_null_share: float
    #: categorical: the share of live values the reference never holds; numeric: outside its range.
    unseen_share: float

    @property
    def verdict(self) -> str:
        return "stable" if self.psi < STABLE else "moderate shift" if self.psi < MODERATE else "shifted"


def feature_drift(live: pa.Table, reference: pa.Table, columns: list[str] | None = None) -> list[FeatureDrift]:
    """The drift of each of `columns` (default: every reference column the live table holds).

    Raises:
        DataError: a named column is missing from either table, or either table has no rows.
    """
    if live.num_rows == 0 or reference.num_rows == 0:
        raise DataError(f"drift needs rows in both tables (live {live.num_rows}, reference {reference.num_rows}).")
    if columns is None:
        columns = [c for c in reference.column_names if c in live.column_names]
    for name in columns:
        for table, what in ((live, "live"), (reference, "reference")):
            if name not in table.column_names:
                raise DataError(f"drift: column {name!r} is not in the {what} table ({table.column_names}).")
    return [_drift(name, live[name], reference[name]) for name in columns]


def _drift(name: str, live: pa.ChunkedArray, reference: pa.ChunkedArray) -> FeatureDrift:
    numeric = pa.types.is_integer(reference.type) or pa.types.is_floating(reference.type)
    if numeric and (pa.types.is_integer(live.type) or pa.types.is_floating(live.type)):
        live_shares, reference_shares, unseen = _numeric_buckets(live, reference)
        kind = "numeric"
    else:
        live_shares, reference_shares, unseen = _categorical_buckets(live, reference)
        kind = "categorical"
    return FeatureDrift(
        name=name,
        kind=kind,
        psi=_psi(live_shares, reference_shares),
        live_null_share=live.null_count / len(live),
        reference_null_share=reference.null_count / len(reference),
        unseen_share=unseen,
    )


def _numeric_buckets(live, reference) -> tuple[np.ndarray, np.ndarray, float]:
    ref = pc.cast(reference, pa.float64()).to_numpy(zero_copy_only=False)
    cur = pc.cast(live, pa.float64()).to_numpy(zero_copy_only=False)
    ref_values, cur_values = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    edges = np.unique(np.quantile(ref_values, np.linspace(0, 1, BINS + 1)[1:-1])) if ref_values.size else np.array([])

    def shares(values: np.ndarray, total: int) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        return np.append(counts, total - values.size) / total  # the last bucket: nulls

    unseen = 0.0
    if ref_values.size and cur_values.size:
        unseen = float(((cur_values < ref_values.min()) | (cur_values > ref_values.max())).mean())
    return shares(cur_values, len(cur)), shares(ref_values, len(ref)), unseen


def _categorical_buckets(live, reference) -> tuple[np.ndarray, np.ndarray, float]:
    ref, cur = pc.cast(reference, pa.string()), pc.cast(live, pa.string())
    counted = pc.value_counts(ref.drop_null())
    pairs = sorted(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True),
                   key=lambda vc: (-vc[1], vc[0]))  # fmt: skip
    top = pa.array([v for v, _ in pairs[:TOP_CATEGORIES]], pa.string())

    def shares(values) -> np.ndarray:
        index = pc.index_in(values, value_set=top).to_numpy(zero_copy_only=False)
        valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
        index = np.where(np.isnan(index.astype(float)), len(top), index).astype(np.int64)  # len(top): "other"
        index[~valid] = len(top) + 1  # nulls
        return np.bincount(index, minlength=len(top) + 2) / len(values)

    seen = pa.array([v for v, _ in pairs], pa.string())
    present = cur.drop_null()
    unseen = (
        float(pc.sum(pc.invert(pc.is_in(present, value_set=seen))).as_py() or 0) / len(cur) if len(present) else 0.0
    )
    return shares(cur), shares(ref), unseen


def _psi(live: np.ndarray, reference: np.ndarray) -> float:
    live, reference = np.maximum(live, _FLOOR), np.maximum(reference, _FLOOR)
    value = float(np.sum((live - reference) * np.log(live / reference)))
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value


def drift_markdown(drifts: list[FeatureDrift], reference_name: str) -> str:
    """A report section: one row per feature, the most shifted first."""
    lines = [
        f"## Drift against `{reference_name}`",
        "",
        "Population stability index per feature (under 0.1 stable, 0.1 to 0.25 a moderate shift, above shifted).",
        "",
        "| feature | kind | PSI | verdict | nulls (live / reference) | unseen in reference |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for d in sorted(drifts, key=lambda d: -d.psi):
        lines.append(
            f"| `{d.name}` | {d.kind} | {d.psi:.3f} | {d.verdict} | {d.live_null_share:.1%} / "
            f"{d.reference_null_share:.1%} | {d.unseen_share:.1%} |"
        )
    return "\n".join(lines) + "\n"
