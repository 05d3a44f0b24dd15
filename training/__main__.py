"""Entry point: `torchrun [...] -m mlworkloads.training --config CONFIG` (a path, URI or JSON)."""

from __future__ import annotations

import sys

from mlworkloads.data.errors import DataError
from mlworkloads.training.config import TrainConfig, config_text
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.model import resolve_factory


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    config = TrainConfig.from_json(config_text(argv, "python -m mlworkloads.training", __doc__))
    if config.model_factory:
        resolve_factory(config.model_factory)
    return config


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from mlworkloads.training.trainer import run

    try:
        run(config)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
