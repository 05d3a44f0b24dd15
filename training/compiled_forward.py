"""The folded network's forward pass for a few rows, as one compiled function (numba).

A one-row request's forward pass through numpy is about a dozen calls on tiny arrays (a matmul,
the index check, a gather and a sum, then a ReLU, a matmul and a bias per layer). Each call's
fixed cost is the whole cost at that size, and in a server, between KServe's requests, numpy's
dispatch code is cold: ~46 us of a one-row request against ~11 us in a loop (bench/README.md).
This is the same arithmetic in one call of machine code: 2.4 us for one row in a loop, and at
concurrency 4 1.06-1.09x the requests/s of the numpy path. It is used up to `COMPILED_ROWS`
rows, where the two cost the same; BLAS is faster on more.

The sums are taken in float64 and rounded to float32 once per layer, so the result agrees with
numpy's float32 matmuls to float32 rounding (a few 1e-7 on logits of order 1). A NaN propagates
as it does through numpy. The function is compiled on its first call in a process (~1.6 s) and
kept in numba's cache, beside this file or in the user's cache directory, whichever is
writable; a process that finds it there loads it in ~0.4 s (and imports numba in ~0.3 s).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlworkloads.training.inference import FoldedTabularNet

#: Up to this many rows the compiled function is used: at 16 rows it and numpy's path both take
#: ~17 us in a loop; at 256 rows BLAS is twice as fast.
COMPILED_ROWS = 16

# One signature, so that one compilation serves every caller: the inputs in any memory layout
# (the preprocessor writes column-major), the weights contiguous as `CompiledForward` keeps them.
_SIGNATURE = (
    "Tuple((float32[:, ::1], int64))(float32[:, :], int64[:, :], float32[:, ::1], float32[::1], "
    "float32[:, ::1], int64[::1], int64[::1], float32[::1], int64[::1])"
)


def _forward(numeric, categorical, numeric_weight, bias, table, offsets, cardinalities, params, widths):
    """Logits (rows, outputs) and -1, or the index of the first column holding a category index
    outside its table (nothing computed). `params` holds each later layer's W^T and bias, flat;
    `widths` the first layer's width, then each later layer's."""
    rows, columns = numeric.shape[0], categorical.shape[1]
    out = np.empty((rows, widths[-1]), np.float32)
    for r in range(rows):
        for j in range(columns):
            if categorical[r, j] < 0 or categorical[r, j] >= cardinalities[j]:
                return out, j
    width = numeric_weight.shape[1]
    first = np.empty(width, np.float64)
    for r in range(rows):
        # The first layer: each categorical column's row of `table` (the first one carries the
        # bias), or the bias alone when there are none, plus the numeric block times its weights.
        for h in range(width):
            first[h] = 0.0 if columns else bias[h]
        for j in range(columns):
            row = offsets[j] + categorical[r, j]
            for h in range(width):
                first[h] += table[row, h]
        for i in range(numeric.shape[1]):
            value = numeric[r, i]
            if value != 0.0:
                for h in range(width):
                    first[h] += value * numeric_weight[i, h]
        x = first.astype(np.float32)
        start = 0
        for layer in range(len(widths) - 1):
            fan_in, fan_out = widths[layer], widths[layer + 1]
            weight = params[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
            start += fan_in * fan_out
            y = params[start : start + fan_out].astype(np.float64)
            start += fan_out
            for i in range(fan_in):
                value = x[i]
                if value <= 0.0:  # ReLU: a NaN is not skipped, so it propagates
                    continue
                for h in range(fan_out):
                    y[h] += value * weight[i, h]
            x = y.astype(np.float32)
        out[r] = x
    return out, -1


@contextlib.contextmanager
def _print_reachable() -> Iterator[None]:
    """Makes `builtins.print` reachable as `<its module>.<its name>` for the block.

    numba's import registers the typing of `print` and checks that it is reachable so; a
    kfp.local run swaps `builtins.print` for a nested function while a task runs (and a run in
    another thread can leave it swapped), which is not, and the import then fails half-done.
    """
    printer = builtins.print
    module = sys.modules.get(getattr(printer, "__module__", None) or "")
    name = getattr(printer, "__name__", "")
    exposed = module is not None and bool(name) and not hasattr(module, name)
    if exposed:
        setattr(module, name, printer)
    try:
        yield
    finally:
        if exposed:
            delattr(module, name)


@functools.cache
def _compiled():
    with _print_reachable():
        import numba

    try:
        return numba.njit(_SIGNATURE, cache=True, nogil=True)(_forward)
    except RuntimeError:  # no writable cache beside this file nor in the user's cache directory
        return numba.njit(_SIGNATURE, nogil=True)(_forward)


class CompiledForward:
    """`FoldedTabularNet`'s forward pass for a few rows, its weights packed for the compiled function."""

    def __init__(self, net: FoldedTabularNet):
        self._net = net
        layers = [part.ravel() for weight, bias in net.layers for part in (weight, bias)]
        params = np.concatenate(layers).astype(np.float32) if layers else np.zeros(0, np.float32)
        widths = [net.numeric_weight.shape[1], *(weight.shape[1] for weight, _ in net.layers)]
        # Everything after the inputs, in the compiled function's order, assembled once.
        self._weights = (net.numeric_weight, net.bias, net.table, net.offsets, net.cardinalities.astype(np.int64),
                         params, np.array(widths, dtype=np.int64))  # fmt: skip

    def __call__(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        # Converted only when needed: on the request path they already are float32 and int64.
        if numeric.dtype != np.float32:
            numeric = numeric.astype(np.float32)
        if categorical.dtype != np.int64:
            categorical = categorical.astype(np.int64)
        logits, bad_column = _compiled()(numeric, categorical, *self._weights)
        if bad_column >= 0:
            self._net.refuse_indices(categorical)
        return logits
