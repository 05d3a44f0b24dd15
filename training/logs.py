"""Turning a training log into the part of it a failure message needs."""

from __future__ import annotations

import re

# The trainer reports bad input as "error: ..."; Python reports crashes as "SomeError: ...".
_ERROR_LINE = re.compile(r"^(error: |\w+(Error|Exception): )")


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
