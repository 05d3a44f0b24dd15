"""Entry point: `torchrun [...] -m mlworkloads.training --config CONFIG` (a path, URI or JSON)."""

from __future__ import annotations

import argparse
import sys

from mlworkloads.data.errors import DataError
from mlworkloads.data.storage import read_bytes
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.model import resolve_factory


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="python -m mlworkloads.training", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="Path or URI of the training config JSON.")
    source.add_argument("--config-json", help="The training config as a JSON string.")
    args = parser.parse_args(argv)
    text = args.config_json if args.config_json else read_bytes(args.config).decode()
    config = TrainConfig.from_json(text)
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
