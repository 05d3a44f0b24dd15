"""Every error the training layer raises, in one place (as httpx keeps its own in `_exceptions.py`).

- `ConfigError`: a training or job setting is invalid, named before anything is launched.
- `ModelDirError`: a model directory is incomplete, inconsistent or newer than this version.
- `CheckpointError`: a checkpoint cannot be trusted.
- `TrainingFailed`: training on this machine exited non-zero.
- `JobFailed`: a PyTorchJob or TrainJob failed or timed out.

Bad data is `mlworkloads.data.errors.DataError`, raised through this layer as it is.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A training setting is invalid; the message names the field and the value."""


class ModelDirError(ValueError):
    """A model directory is incomplete, inconsistent or from a newer version."""


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be trusted (truncated, corrupted or unreadable)."""


class TrainingFailed(RuntimeError):
    """Training exited non-zero; the message carries the log tail (and, for our trainer, the checkpoint to resume)."""


class JobFailed(RuntimeError):
    """The job failed or timed out; the message has its conditions, events and log tails."""
