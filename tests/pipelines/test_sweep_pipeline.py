"""sweep_pipeline end to end with kfp.local: ParallelFor trials, Collected, retrain, gate, deploy."""

import json
import pathlib

import pytest

from mlworkloads.data.errors import DataError
from mlworkloads.local_run import find_output, run_locally
from mlworkloads.pipelines import PIPELINES
from mlworkloads.training.sweep import select_best


@pytest.mark.e2e
def test_the_sweep_trains_every_configuration_retrains_the_best_and_deploys_it(tmp_path):
    configurations = [
        {"hidden_sizes": [8], "learning_rate": 0.0005, "dropout": 0.0},
        {"hidden_sizes": [64, 32], "learning_rate": 0.003, "dropout": 0.0},
    ]
    root = run_locally(
        PIPELINES["sweep_pipeline"],
        {
            "max_rows": 30000,
            "configurations": configurations,
            "trial_epochs": 1,
            "epochs": 2,
            "backend": "local",
            "deploy_backend": "local",
            "thresholds": {"roc_auc": ">=0.5"},
        },
        str(tmp_path),
    )
    trials = [p for p in pathlib.Path(root).rglob("executor_output.json") if p.parent.name == "train-pytorchjob"]
    assert len(trials) == 2
    final = json.loads(pathlib.Path(find_output(root, "train-pytorchjob-2", "model"), "model.json").read_text())
    assert final["architecture"]["hidden_sizes"] == [64, 32]  # the stronger configuration won
    status = json.loads(pathlib.Path(find_output(root, "deploy-inferenceservice", "status")).read_text())
    assert status["ready"] is True


def test_selection_prefers_higher_auc_and_lower_loss():
    trials = [
        {"validation_roc_auc": 0.7, "validation_loss": 0.3, "hyperparameters": {"hidden_sizes": [8.0]}},
        {"validation_roc_auc": 0.8, "validation_loss": 0.4, "hyperparameters": {"hidden_sizes": [16.0]}},
    ]
    assert select_best(trials, "validation_roc_auc")["hidden_sizes"] == [16]
    assert select_best(trials, "validation_loss")["hidden_sizes"] == [8]
    with pytest.raises(DataError, match="trial 0 has no metric 'validation_rmse'"):
        select_best(trials, "validation_rmse")
