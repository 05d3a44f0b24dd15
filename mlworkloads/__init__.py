"""mlworkloads: Kubeflow Pipelines components from raw data to a served endpoint."""

from mlworkloads._version import __version__

__all__ = ["__version__"]
