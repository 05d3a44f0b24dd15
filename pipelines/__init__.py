"""Pipelines built from the components; `PIPELINES` is what the CLI compiles and runs."""

from mlworkloads.pipelines.data_pipeline import data_pipeline
from mlworkloads.pipelines.sweep_pipeline import sweep_pipeline
from mlworkloads.pipelines.training_pipeline import training_pipeline

PIPELINES = {
    "data_pipeline": data_pipeline,
    "training_pipeline": training_pipeline,
    "sweep_pipeline": sweep_pipeline,
}

__all__ = ["PIPELINES", "data_pipeline", "sweep_pipeline", "training_pipeline"]
