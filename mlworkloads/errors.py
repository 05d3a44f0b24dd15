"""The errors of the package's foundation and its CLI, in one place (as httpx keeps its own in
`_exceptions.py`). The layers' own are `mlworkloads.data.errors`, `mlworkloads.training.errors`
and `mlworkloads.serving.errors`.

- `AdmissionDenied`: an admission webhook refused an object.
- `RunIdentityError`: a step cannot tell which pipeline run it belongs to.
- `ArtifactStoreError`: KFP's artifact store cannot be reached with what is configured.
- `ParameterError`: a `-p key=value` that does not fit the pipeline.
- `SubmitError`: the KFP backend refused a request, or a run did not succeed.
- `StepFailed`: a step of a local run failed.
- `CatalogError`: a component's catalogue metadata breaks the schema.
"""

from __future__ import annotations


class AdmissionDenied(ValueError):
    """An admission webhook refused the object (the API server answers 403 for it, as for RBAC)."""


class RunIdentityError(RuntimeError):
    """The run id is still KFP's literal placeholder and the pod does not say which run it is."""


class ArtifactStoreError(RuntimeError):
    """KFP's artifact store cannot be reached with what is configured; the message says what is missing."""


class ParameterError(ValueError):
    """A `-p key=value` that does not fit the pipeline's parameters."""


class SubmitError(RuntimeError):
    """The backend refused a request, or a run ended in a state other than SUCCEEDED."""


class StepFailed(RuntimeError):
    """A pipeline step failed; the message is the step's own error, then the log's path."""

    def __init__(self, task: str, error: str, log_path: str):
        super().__init__(f"step {task!r} failed: {error}\n  full log: {log_path}")
        self.task, self.error, self.log_path = task, error, log_path


class CatalogError(ValueError):
    """A metadata.yaml breaks the schema; the message names the file and the field."""
