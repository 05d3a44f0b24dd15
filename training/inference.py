"""Scoring without autograd or module calls: the built-in network folded into a few numpy ops.

A request-sized batch spends almost all of a torch forward pass in per-operation dispatch,
not arithmetic: TabularNet is a dozen ops (an embedding lookup per categorical column, a
concat, a linear, ReLU and dropout module per layer), and in a server, where the request path
evicts torch's large dispatch code between requests, they cost ~200 us for one row against
~45 us for the folded form below (bench/README.md; the native profile is in
bench/profiles/serving-forward-torch-native.txt).

In eval mode the network folds exactly: the first linear layer is linear in each embedding,
so each table multiplies into its slice of that layer's weight once at load (E_i @ W_i^T,
one row per category), and the first layer becomes one matmul of the numeric block plus a
row lookup per categorical column. Dropout is the identity. What is left is a matmul and a
ReLU per further layer. The folded weights are computed in float64 and kept as float32,
the dtype the network runs in; results match torch's to float32 rounding. Up to
`COMPILED_ROWS` rows (a request's few) the same arithmetic runs as one compiled function
(`compiled_forward.py`): at that size numpy's fixed cost per call is the whole cost.

Any other module (a `model_factory` network, or a TabularNet subclass) runs through torch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mlworkloads.training.compiled_forward import COMPILED_ROWS, CompiledForward
from mlworkloads.training.model import TabularNet

#: (numeric (n, width) float32, categorical (n, columns) int64) -> logits (n, outputs) float32
Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class FoldedTabularNet:
    """TabularNet in eval mode as numpy arrays; call it like the module, on numpy arrays."""

    numeric_weight: np.ndarray  # (numeric width, first layer width): W_numeric^T
    bias: np.ndarray  # (first layer width,): added through `table` when there are categorical columns
    table: np.ndarray  # (sum of cardinalities, first layer width): every E_i @ W_i^T stacked, + bias in the first
    offsets: np.ndarray  # (columns,): where each column's rows start in `table`
    cardinalities: np.ndarray  # (columns,) uint64
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (W^T, b) of each layer after the first

    def __call__(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        if len(numeric) <= COMPILED_ROWS:
            return self._compiled(numeric, categorical)
        out = numeric @ self.numeric_weight
        if not self.offsets.size:
            out += self.bias
        else:
            if categorical.dtype != np.int64:
                categorical = categorical.astype(np.int64)
            # A stacked table would read a neighbouring column's rows where nn.Embedding
            # raises, so indices are checked (the preprocessor and the V2 check never send a
            # bad one). Viewed as uint64, a negative index is huge: one comparison for both ends.
            if (categorical.view(np.uint64) >= self.cardinalities).any():
                self.refuse_indices(categorical)
            # Rows gathered column by column, (columns, n, width): the sum adds whole planes.
            # Column 0's rows carry the first layer's bias (each row reads exactly one of them).
            out += np.add.reduce(self.table.take((categorical + self.offsets).T, axis=0), axis=0)
        for weight, bias in self.layers:
            np.maximum(out, 0, out=out)
            out = out @ weight
            out += bias
        return out

    def refuse_indices(self, categorical: np.ndarray) -> None:
        """Raises IndexError for category indices some of which are outside their tables."""
        raise IndexError(
            f"category index out of range for cardinalities {self.cardinalities.tolist()}: got column "
            f"minima {categorical.min(axis=0).tolist()}, maxima {categorical.max(axis=0).tolist()}."
        )

    @functools.cached_property
    def _compiled(self) -> CompiledForward:
        return CompiledForward(self)


def fold(module: TabularNet) -> FoldedTabularNet | None:
    """The folded form of an eval-mode TabularNet, or None when `module` is anything else."""
    if type(module) is not TabularNet or module.training:
        return None
    linears = [layer for layer in module.mlp if isinstance(layer, nn.Linear)]
    pattern = [type(layer) for layer in module.mlp]
    expected = [nn.Linear, nn.ReLU, nn.Dropout] * (len(linears) - 1) + [nn.Linear]
    if pattern != expected or any(table.max_norm is not None for table in module.embeddings):
        return None

    def array(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().double().numpy()

    first = array(linears[0].weight)  # (width, inputs): inputs = numeric block, then each embedding
    numeric_width = first.shape[1] - sum(table.embedding_dim for table in module.embeddings)
    tables, start = [], numeric_width
    for embedding in module.embeddings:
        width = embedding.embedding_dim
        tables.append(array(embedding.weight) @ first[:, start : start + width].T)
        start += width
    bias = array(linears[0].bias)
    if tables:
        tables[0] = tables[0] + bias
    cardinalities = np.array([embedding.num_embeddings for embedding in module.embeddings], dtype=np.uint64)
    width = first.shape[0]
    return FoldedTabularNet(
        numeric_weight=np.ascontiguousarray(first[:, :numeric_width].T, dtype=np.float32),
        bias=bias.astype(np.float32),
        table=np.concatenate(tables).astype(np.float32) if tables else np.zeros((0, width), np.float32),
        offsets=np.concatenate([[0], np.cumsum(cardinalities)])[:-1].astype(np.int64),
        cardinalities=cardinalities,
        layers=tuple(
            (np.ascontiguousarray(array(layer.weight).T, dtype=np.float32), array(layer.bias).astype(np.float32))
            for layer in linears[1:]
        ),
    )


def forward_function(module: nn.Module) -> Forward:
    """The fastest exact forward pass for `module` (in eval mode): folded if it can be, else torch."""
    folded = fold(module)
    if folded is not None:
        return folded

    @torch.inference_mode()
    def through_torch(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(numeric), torch.from_numpy(categorical)).float().numpy()

    return through_torch
