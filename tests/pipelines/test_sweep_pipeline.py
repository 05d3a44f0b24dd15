"""sweep_pipeline end to end with kfp.local: ParallelFor trials, Collected, retrain, gate, deploy."""

import json
import pathlib
import time

import pytest

from mlworkloads.data.errors import DataError
from mlworkloads.local_run import find_output, run_locally
from mlworkloads.pipelines import PIPELINES
from mlworkloads.training.sweep import select_best


@pytest.mark.e2e
def test_the_sweep_trains_every_configuration_retrains_the_best_and_deploys_it(tmp_path, mlflow_uri):
    started = int(time.time() * 1000)
    configurations = [
        {"hidden_sizes": [8], "learning_rate": 0.0005, "dropout": 0.0},
        {"hidden_sizes": [64, 32], "learning_rate": 0.003, "dropout": 0.0},
    ]
    root = run_locally(
        PIPELINES["sweep_pipeline"],
        {
            "max_rows": 30000,
            "configurations": configurations,
            # One stump of shrinkage 0.01 barely moves off the base rate: by log loss the stronger
            # network beats it by a wide margin (AUC would not: one good split ranks well).
            "tree_configurations": [{"learning_rate": 0.01, "max_leaves": 2}],
            "trial_rounds": 1,
            "selection_metric": "validation_log_loss",
            "trial_epochs": 2,
            "epochs": 2,
            "backend": "local",
            "tree_backend": "local",
            "deploy_backend": "local",
            "thresholds": {"roc_auc": ">=0.5"},
            "tracking_uri": mlflow_uri,
        },
        str(tmp_path),
    )
    trials = [p for p in pathlib.Path(root).rglob("executor_output.json") if p.parent.name == "train-pytorchjob"]
    assert len(trials) == 2
    # In MLflow: each trial in a child run of its own (its parameters and curves), the final
    # training and the gate in the pipeline run's run itself.
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("mlworkloads").experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.`mlworkloads.child` != '' and attributes.start_time >= {started}"
    )
    assert sorted(c.data.params["learning_rate"] for c in children) == ["0.0005", "0.003", "0.01"]
    assert all("best_validation_log_loss" in c.data.metrics for c in children)
    (parent_id,) = {c.data.tags["mlflow.parentRunId"] for c in children}
    parent = client.get_run(parent_id)
    assert parent.data.params["hidden_sizes"] == "[64, 32]" and "test_roc_auc" in parent.data.metrics
    final = json.loads(pathlib.Path(find_output(root, "train-pytorchjob-2", "model"), "model.json").read_text())
    assert final["architecture"]["hidden_sizes"] == [64, 32]  # the stronger configuration won
    assert not [p for p in pathlib.Path(root).rglob("executor_output.json") if p.parent.name == "train-xgboost-2"]
    status = json.loads(pathlib.Path(find_output(root, "deploy-inferenceservice", "status")).read_text())
    assert status["ready"] is True


@pytest.mark.e2e
def test_the_sweep_searches_both_families_and_the_best_one_is_retrained_gated_and_deployed(tmp_path):
    root = run_locally(
        PIPELINES["sweep_pipeline"],
        {
            "max_rows": 30000,
            "configurations": [{"hidden_sizes": [8], "learning_rate": 0.0005, "dropout": 0.0}],
            "tree_configurations": [{"learning_rate": 0.2, "max_leaves": 31}],
            "trial_epochs": 1,
            "trial_rounds": 60,
            "num_boost_round": 80,
            "backend": "local",
            "tree_backend": "local",
            "nproc_per_node": 1,
            "deploy_backend": "local",
            "thresholds": {"roc_auc": ">=0.5"},
        },
        str(tmp_path),
    )
    trials = {p.parent.name for p in pathlib.Path(root).rglob("executor_output.json")}
    assert {"train-pytorchjob", "train-xgboost", "select-best-trial"} <= trials
    best = json.loads(pathlib.Path(find_output(root, "select-best-trial", "executor_output.json")).read_text())
    assert best["parameterValues"]["model_family"] == "xgboost"  # 60 rounds of trees beat 1 epoch of [8]
    assert "train-pytorchjob-2" not in trials
    final = json.loads(pathlib.Path(find_output(root, "train-xgboost-2", "model"), "model.json").read_text())
    assert final["family"] == "xgboost" and final["settings"]["max_leaves"] == 31
    status = json.loads(pathlib.Path(find_output(root, "deploy-inferenceservice-2", "status")).read_text())
    assert status["ready"] is True


def test_selection_compares_trials_of_both_families():
    trials = [
        {
            "validation_roc_auc": 0.91,
            "model_family": "network",
            "hyperparameters": {"hidden_sizes": [8.0], "dropout": 0.1, "learning_rate": 0.002},
        },
        {
            "validation_roc_auc": 0.94,
            "model_family": "xgboost",
            "hyperparameters": {"learning_rate": 0.1, "max_leaves": 31.0},
        },
    ]
    assert select_best(trials, "validation_roc_auc") == {
        "learning_rate": 0.1,
        "max_leaves": 31,
        "model_family": "xgboost",
        "metric": 0.94,
    }
    trials[0]["validation_roc_auc"] = 0.95
    best = select_best(trials, "validation_roc_auc")
    assert best["model_family"] == "network" and best["hidden_sizes"] == [8]


def test_selection_prefers_higher_auc_and_lower_loss():
    trials = [
        {"validation_roc_auc": 0.7, "validation_loss": 0.3, "hyperparameters": {"hidden_sizes": [8.0]}},
        {"validation_roc_auc": 0.8, "validation_loss": 0.4, "hyperparameters": {"hidden_sizes": [16.0]}},
    ]
    assert select_best(trials, "validation_roc_auc")["hidden_sizes"] == [16]
    assert select_best(trials, "validation_loss")["hidden_sizes"] == [8]
    with pytest.raises(DataError, match="trial 0 has no metric 'validation_rmse'"):
        select_best(trials, "validation_rmse")
