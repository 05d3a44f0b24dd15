"""Experiment tracking against a REAL MLflow tracking server (SQLite, artifacts in the tests' S3)."""

import json
import logging
import os
import pathlib

import pytest
from conftest import free_port, train_model

from mlworkloads.training import tracking
from mlworkloads.training.tracking import TrackingError, TrackingSettings


def _runs(uri, key):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mlworkloads")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`kfp.run_id` = '{key}'")


@pytest.mark.e2e
def test_the_trainer_logs_parameters_curves_and_history_into_the_pipeline_runs_mlflow_run(
    mlflow_uri, sample_features, tmp_path, s3_endpoint
):
    from mlflow import MlflowClient

    key = f"run-{os.urandom(4).hex()}"
    model = train_model(
        sample_features, tmp_path / "model", epochs=2, hidden_sizes=[16], tracking_uri=mlflow_uri, tracking_run_key=key
    )
    (run,) = _runs(mlflow_uri, key)
    assert run.data.params["hidden_sizes"] == "[16]" and run.data.params["epochs"] == "2"
    assert run.data.params["task"] == "binary" and run.data.tags["mlworkloads.model_uri"] == model
    client = MlflowClient(mlflow_uri)
    curve = client.get_metric_history(run.info.run_id, "validation_loss")
    history = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert [(m.step, m.value) for m in curve] == [
        (h["epoch"], pytest.approx(h["validation_loss"])) for h in history["history"]
    ]
    assert run.data.metrics["best_validation_roc_auc"] == pytest.approx(history["metrics"]["validation_roc_auc"])
    # The history went through the server to its artifact store, the tests' S3 bucket.
    local = client.download_artifacts(run.info.run_id, "training/metrics.json", str(tmp_path))
    assert json.loads(pathlib.Path(local).read_text())["history"] == history["history"]
    import s3fs

    stored = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}).find("mlflow-artifacts/mlflow")
    assert any(path.endswith(f"{run.info.run_id}/artifacts/training/metrics.json") for path in stored)


@pytest.mark.e2e
def test_every_step_of_one_pipeline_run_logs_into_the_same_mlflow_run(mlflow_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)  # as a platform sets it for every step
    key = f"run-{os.urandom(4).hex()}"
    first = tracking.start(TrackingSettings(run_key=key), "train")
    first.log_metrics({"validation_loss": 0.5}, step=0)
    again = tracking.start(TrackingSettings(run_key=key), "evaluate")
    again.log_metrics({"test_roc_auc": 0.8})
    assert again.run_id == first.run_id
    (run,) = _runs(mlflow_uri, key)
    assert run.data.metrics == {"validation_loss": 0.5, "test_roc_auc": 0.8}
    assert run.data.tags["mlworkloads.first_stage"] == "train"


def test_no_uri_and_no_environment_means_no_tracking(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.start(TrackingSettings(run_key="r"), "train") is None


def test_a_server_that_is_down_fails_the_trainer_before_it_writes_anything(sample_features, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError, match=f"MLflow tracking server {down} cannot be used") as err:
        train_model(sample_features, tmp_path / "model", epochs=1, tracking_uri=down, tracking_run_key="r")
    assert "optional" in str(err.value)
    assert not (tmp_path / "model").exists() and not (tmp_path / "model-checkpoints").exists()


def test_optional_tracking_trains_without_a_server_and_says_so(sample_features, tmp_path, caplog):
    down = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="mlworkloads.training.tracking"):
        train_model(
            sample_features,
            tmp_path / "model",
            epochs=1,
            tracking_uri=down,
            tracking_run_key="r",
            tracking_optional=True,
        )
    assert (tmp_path / "model" / "metrics.json").exists()
    assert f"MLflow tracking server {down} cannot be used" in caplog.text and "going on without tracking" in caplog.text


@pytest.mark.e2e
def test_a_registered_version_carries_its_lineage_and_the_champion_alias_moves(
    mlflow_uri, sample_model, sample_features, tmp_path
):
    import numpy as np
    import pyarrow.parquet as pq
    from mlflow import MlflowClient

    from mlworkloads.training import registry
    from mlworkloads.training.export import load

    settings = TrackingSettings(mlflow_uri, run_key=f"run-{os.urandom(4).hex()}")
    name = f"flights-{os.urandom(3).hex()}"
    lineage = {"kfp.run_id": settings.run_key, "dataset_uri": "s3://b/raw.parquet", "validation_roc_auc": 0.71}
    first = registry.register(settings, name, sample_model, lineage)
    second = registry.register(settings, name, sample_model, lineage)
    assert (first, second) == ("1", "2")
    client = MlflowClient(mlflow_uri)
    version = client.get_model_version(name, first)
    assert version.tags == {k: str(v) for k, v in lineage.items()}
    (run,) = _runs(mlflow_uri, settings.run_key)
    assert version.run_id == run.info.run_id
    registry.set_alias(settings, name, first)
    registry.set_alias(settings, name, second)  # the alias moves: one version holds it
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    # The champion read back is the model that was registered: the same predictions.
    champion = registry.download(settings, f"{name}@champion", str(tmp_path))
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 64)
    np.testing.assert_array_equal(load(champion).predict_columns(rows), load(sample_model).predict_columns(rows))


def test_a_reference_that_is_neither_an_alias_nor_a_version_is_refused(mlflow_uri):
    from mlworkloads.training import registry

    with pytest.raises(TrackingError, match="expected 'model@alias' or 'model/version'"):
        registry.download(TrackingSettings(mlflow_uri), "flights")


@pytest.mark.e2e
def test_the_trees_log_every_rounds_metric_and_their_history_into_the_mlflow_run(mlflow_uri, sample_features, tmp_path):
    from mlflow import MlflowClient

    from mlworkloads.training.boosting import run
    from mlworkloads.training.boosting_config import BoostingConfig

    key = f"run-{os.urandom(4).hex()}"
    run(
        BoostingConfig(
            train_uri=sample_features["train"],
            validation_uri=sample_features["validation"],
            preprocessor_uri=sample_features["preprocessor"],
            output_uri=str(tmp_path / "trees"),
            num_boost_round=40,
            early_stopping_rounds=0,
            tracking_uri=mlflow_uri,
            tracking_run_key=key,
        )
    )
    (tracked,) = _runs(mlflow_uri, key)
    assert tracked.data.params["num_boost_round"] == "40" and tracked.data.params["task"] == "binary"
    curve = MlflowClient(mlflow_uri).get_metric_history(tracked.info.run_id, "validation_auc")
    history = json.loads((tmp_path / "trees" / "metrics.json").read_text())["history"]
    assert [(m.step, m.value) for m in curve] == [(h["round"], pytest.approx(h["validation_auc"])) for h in history]
    assert len(curve) == 40
    assert "best_validation_roc_auc" in tracked.data.metrics


@pytest.mark.e2e
def test_a_sweeps_trials_log_into_child_runs_of_the_pipeline_runs_mlflow_run(mlflow_uri):
    """Trials run in parallel under one pipeline run, each with its own parameters (which one MLflow
    run refuses to change): each logs into its own child run, found again by its key."""
    from mlflow import MlflowClient

    key = f"run-{os.urandom(4).hex()}"
    trials = {
        child: tracking.start(TrackingSettings(mlflow_uri, run_key=key, child=child), "train")
        for child in ("task-a", "task-b")
    }
    trials["task-a"].log_params({"learning_rate": 0.01})
    trials["task-b"].log_params({"learning_rate": 0.1})
    parent = tracking.start(TrackingSettings(mlflow_uri, run_key=key), "evaluate")
    again = tracking.start(TrackingSettings(mlflow_uri, run_key=key, child="task-a"), "train")
    assert again.run_id == trials["task-a"].run_id and parent.run_id not in {t.run_id for t in trials.values()}
    (found,) = _runs(mlflow_uri, key)  # the children do not carry the key: the parent is the one run found
    assert found.info.run_id == parent.run_id
    client = MlflowClient(mlflow_uri)
    for child, trial in trials.items():
        run = client.get_run(trial.run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent.run_id and run.info.run_name == child
    assert client.get_run(trials["task-b"].run_id).data.params == {"learning_rate": "0.1"}


@pytest.mark.e2e
def test_two_steps_that_create_the_run_at_once_end_in_the_oldest_one(mlflow_uri):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    experiment_id = tracking._create_experiment(client, "mlworkloads")  # or the one that exists
    key = f"run-{os.urandom(4).hex()}"
    settings = TrackingSettings(mlflow_uri, run_key=key)
    # What two trials see when both found no run yet: each creates one, and both end in the first.
    first = tracking._create_run(client, experiment_id, settings, "train")
    second = tracking._create_run(client, experiment_id, settings, "train")
    assert second == first
    (run,) = _runs(mlflow_uri, key)
    assert run.info.run_id == first
