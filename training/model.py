"""The tabular network, and how a model is built from the preprocessor's feature spec."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from mlworkloads.training.errors import ConfigError


class TabularNet(nn.Module):
    """Embeddings for the categorical columns, concatenated with the numeric block, into an MLP.

    Args:
        numeric_width: Width of the numeric input block.
        cardinalities: Embedding table size per categorical column (OOV bucket included).
        output_size: Logits per row.
        hidden_sizes: Hidden layer widths.
        dropout: Dropout after each hidden layer.
        embedding_dim: Embedding width; 0 picks min(16, (cardinality + 1) // 2) per column.
    """

    def __init__(
        self,
        numeric_width: int,
        cardinalities: list[int],
        output_size: int,
        hidden_sizes: list[int],
        dropout: float = 0.0,
        embedding_dim: int = 0,
    ):
        super().__init__()
        dims = [embedding_dim or min(16, (n + 1) // 2) for n in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(n, d) for n, d in zip(cardinalities, dims, strict=True))
        layers: list[nn.Module] = []
        width = numeric_width + sum(dims)
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        embedded = [table(categorical[:, i]) for i, table in enumerate(self.embeddings)]
        return self.mlp(torch.cat([numeric, *embedded], dim=1))


def feature_spec(preprocessor) -> dict[str, Any]:
    """What a model factory is told about its inputs and outputs."""
    return {
        "task": preprocessor.task,
        "numeric_width": preprocessor.numeric_width,
        "cardinalities": preprocessor.cardinalities,
        "output_size": preprocessor.output_size,
        "classes": preprocessor.classes,
    }


def build_model(spec: dict[str, Any], architecture: dict[str, Any]) -> nn.Module:
    """Builds the network for `spec` (see `feature_spec`) as `architecture` describes.

    `architecture` holds `hidden_sizes`, `dropout`, `embedding_dim` and `model_factory`; a
    non-empty `model_factory` ("module:function") is called as `function(spec, architecture)`
    and must return an `nn.Module` whose forward takes (numeric, categorical).
    """
    factory = architecture.get("model_factory") or ""
    if factory:
        return _call_factory(factory, spec, architecture)
    return TabularNet(
        numeric_width=spec["numeric_width"],
        cardinalities=spec["cardinalities"],
        output_size=spec["output_size"],
        hidden_sizes=architecture["hidden_sizes"],
        dropout=architecture["dropout"],
        embedding_dim=architecture["embedding_dim"],
    )


def resolve_factory(factory: str):
    """Imports `module:function`, failing with the name when it cannot be found."""
    module_name, _, function_name = factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"model_factory={factory!r}: cannot import module {module_name!r}: {err}") from err
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"model_factory={factory!r}: {module_name!r} has no callable {function_name!r}.")
    return function


def _call_factory(factory: str, spec, architecture) -> nn.Module:
    model = resolve_factory(factory)(spec, architecture)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model_factory={factory!r} returned {type(model).__name__}, not an nn.Module.")
    return model
