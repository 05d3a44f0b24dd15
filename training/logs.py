"""Training logs: rank-0 logging, and the part of a log a failure message needs."""

from __future__ import annotations

import logging
import re

# The trainer reports bad input as "error: ..."; Python reports crashes as "SomeError: ...", or
# with its module for a type outside the builtins ("xgboost.core.XGBoostError: ...").
_ERROR_LINE = re.compile(r"^(error: |[\w.]*(Error|Exception): )")


def digest(lines: list[str], tail: int = 30) -> str:
    """The error lines found anywhere in `lines` (deduplicated), then the last `tail` lines.

    torchrun's own failure report is long and says little; the trainer's error line, which
    usually comes before it, is what names the problem.
    """
    errors = list(dict.fromkeys(line.rstrip() for line in lines if _ERROR_LINE.match(line.strip())))
    errors = [e for e in errors if not e.startswith("torch.distributed.elastic")]
    head = "".join(f"  {e}\n" for e in errors[-5:])
    body = "".join(line if line.endswith("\n") else line + "\n" for line in lines[-tail:])
    return (f"errors reported:\n{head}" if head else "") + body


def rank_zero_logger(world, name: str = "mlworkloads.training") -> logging.Logger:
    """A logger that speaks on global rank 0 only, so N processes do not print N copies.

    `world` is either trainer's: anything with `rank` and `is_main`.
    """
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [rank %(rank)s] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if world.is_main else logging.WARNING)
    for handler in logger.handlers:
        handler.addFilter(lambda record: setattr(record, "rank", world.rank) or True)
    return logger
