"""Kubeflow Pipelines components, one per module; import them from here.

Every component is a lightweight Python component whose base image is this project's own
(`mlworkloads.images.COMPONENT_IMAGE`) and whose body calls plain library code, so it runs
the same under `kfp.local.SubprocessRunner` and in a cluster.
"""

from mlworkloads.components.deploy_inferenceservice import deploy_inferenceservice
from mlworkloads.components.deploy_model import deploy_model
from mlworkloads.components.evaluate_model import evaluate_model
from mlworkloads.components.evaluate_predictions import evaluate_predictions
from mlworkloads.components.fit_preprocessor import fit_preprocessor
from mlworkloads.components.ingest_table import ingest_table
from mlworkloads.components.launch_training_job import launch_training_job
from mlworkloads.components.prediction_logs import prediction_logs
from mlworkloads.components.register_model import register_model
from mlworkloads.components.select_best_trial import select_best_trial
from mlworkloads.components.set_model_alias import set_model_alias
from mlworkloads.components.split_dataset import split_dataset
from mlworkloads.components.summarize_run import summarize_run
from mlworkloads.components.train_pytorchjob import train_pytorchjob
from mlworkloads.components.train_xgboost import train_xgboost

__all__ = [
    "deploy_inferenceservice",
    "deploy_model",
    "evaluate_model",
    "evaluate_predictions",
    "fit_preprocessor",
    "ingest_table",
    "launch_training_job",
    "prediction_logs",
    "register_model",
    "select_best_trial",
    "set_model_alias",
    "split_dataset",
    "summarize_run",
    "train_pytorchjob",
    "train_xgboost",
]
