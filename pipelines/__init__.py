"""Pipelines built from the components; `PIPELINES` is what the CLI compiles and runs."""

from mlworkloads.pipelines.data_pipeline import data_pipeline

PIPELINES = {
    "data_pipeline": data_pipeline,
}

__all__ = ["PIPELINES", "data_pipeline"]
