"""Every error the serving layer raises, in one place (as httpx keeps its own in `_exceptions.py`).

- `ServiceConfigError`: a deploy setting is invalid, named before anything is applied.
- `DeployFailed`: the new model was not promoted (rolled back, or the new service deleted).
- `SmokeTestFailed`: an endpoint answered wrongly or not at all.

A payload a predictor refuses is KServe's own `kserve.errors.InvalidInput` (HTTP 400).
"""

from __future__ import annotations


class ServiceConfigError(ValueError):
    """A deploy setting is invalid; the message names it."""


class DeployFailed(RuntimeError):
    """The new model was not promoted, or the live service cannot be read; the message says why."""


class SmokeTestFailed(RuntimeError):
    """The endpoint answered wrongly (or not at all); the message says what differed."""
