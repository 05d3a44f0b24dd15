"""The gradient-boosted trees: training on real flights, distributed over XGBoost's collective,
resumed from a checkpoint, exported, scored like the network, and bad input refused by name."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BOOSTED_SETTINGS as FAST

from mlworkloads.data.errors import DataError
from mlworkloads.data.preprocessor import LABEL_COLUMN
from mlworkloads.training import evaluation, launch
from mlworkloads.training.boosting import run
from mlworkloads.training.boosting_config import BoostingConfig
from mlworkloads.training.errors import ConfigError, ModelDirError, TrainingFailed
from mlworkloads.training.export import load


def _config(features, out, **settings) -> BoostingConfig:
    return BoostingConfig(
        train_uri=features["train"],
        validation_uri=features["validation"],
        preprocessor_uri=features["preprocessor"],
        output_uri=str(out),
        **settings,
    )


def _test_scores(model_dir, features) -> np.ndarray:
    _, scores = evaluation.score(load(model_dir), pq.read_table(features["test_raw"]))
    return scores


def _inputs(features) -> dict[str, launch.Inputs]:
    return {
        name: launch.Inputs(features[key], features[key])
        for name, key in (
            ("train_features", "train"),
            ("validation_features", "validation"),
            ("preprocessor", "preprocessor"),
        )
    }


def test_the_trees_score_held_out_flights_and_load_as_a_model_directory(boosted_model, sample_features):
    model = load(boosted_model)
    assert model.family == "xgboost" and model.task == "binary"
    assert sorted(os.listdir(boosted_model)) == ["metrics.json", "model.json", "model.ubj", "preprocessor.json"]
    labels, scores = evaluation.score(model, pq.read_table(sample_features["test_raw"]))
    assert scores.shape == (len(labels), 2) and np.allclose(scores.sum(axis=1), 1, atol=1e-6)
    metrics = evaluation.evaluate(model, pq.read_table(sample_features["test_raw"]), {}).metrics
    assert metrics["roc_auc"] > 0.85, metrics
    with open(os.path.join(boosted_model, "metrics.json")) as f:
        history = json.load(f)["history"]
    assert [h["round"] for h in history] == list(range(FAST["num_boost_round"]))


def test_two_workers_grow_the_trees_one_worker_grows(boosted_model, sample_features, tmp_path):
    summary = launch.train(
        **_inputs(sample_features),
        model_dir=str(tmp_path / "model"),
        training=FAST,
        model_family="xgboost",
        backend="local",
        nproc_per_node=2,
        echo=lambda _: None,
    )
    assert summary["world_size"] == 2
    one, two = _test_scores(boosted_model, sample_features), _test_scores(str(tmp_path / "model"), sample_features)
    # Each worker sketches the quantiles of its half of the rows; the merged sketch can move a
    # bin edge, nothing more.
    assert np.abs(one - two).max() < 0.05
    labels = pq.read_table(sample_features["test_raw"])["late"].to_numpy().astype(int)
    from sklearn.metrics import roc_auc_score

    assert abs(roc_auc_score(labels, one[:, 1]) - roc_auc_score(labels, two[:, 1])) < 0.002


def test_a_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one(boosted_model, sample_features, tmp_path):
    config = _config(sample_features, tmp_path / "first", **{**FAST, "num_boost_round": 40})
    run(config)
    resumed = _config(sample_features, tmp_path / "resumed", checkpoint_uri=config.checkpoint_uri, **FAST)
    summary = run(resumed)
    assert summary["rounds_run"] == FAST["num_boost_round"]
    with open(os.path.join(config.checkpoint_uri, "latest.json")) as f:
        assert json.load(f)["unit"] == "round"
    np.testing.assert_allclose(
        _test_scores(str(tmp_path / "resumed"), sample_features),
        _test_scores(boosted_model, sample_features),
        atol=1e-6,
    )


def test_early_stopping_keeps_the_best_round(sample_features, tmp_path):
    summary = run(
        _config(sample_features, tmp_path / "model", num_boost_round=400, early_stopping_rounds=5, learning_rate=0.5)
    )
    assert summary["rounds_run"] < 400
    assert summary["best_round"] == summary["rounds_run"] - 5
    assert load(str(tmp_path / "model")).config["best_iteration"] == summary["best_round"] - 1


def test_a_train_split_of_one_class_is_refused_naming_the_file(sample_features, tmp_path):
    table = pq.read_table(sample_features["train"])
    index = table.schema.get_field_index(LABEL_COLUMN)
    zeros = pa.array(np.zeros(table.num_rows), type=table.schema.field(index).type)
    one_class = table.set_column(index, LABEL_COLUMN, zeros)
    path = tmp_path / "train_features.parquet"
    pq.write_table(one_class, path)
    with pytest.raises(DataError, match=f"the train features at '{path}' hold labels of one class only"):
        run(_config({**sample_features, "train": str(path)}, tmp_path / "model", **FAST))
    assert not (tmp_path / "model").exists()


def test_a_booster_file_that_is_not_one_is_refused_by_name(boosted_model, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(boosted_model, broken)
    (broken / "model.ubj").write_bytes(b"this is not a booster")
    with pytest.raises(ModelDirError, match=r"model.ubj in '.*' cannot be loaded"):
        load(str(broken))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"learning_rate": 0}, "learning_rate=0: expected a number > 0"),
        ({"grow_policy": "depthwise"}, "grow_policy='depthwise' needs max_depth > 0"),
        ({"categorical_encoding": "onehot"}, "categorical_encoding='onehot': expected one of ['ordinal', 'native']"),
        ({"hidden_sizes": [8]}, "unknown training setting(s) ['hidden_sizes']"),
        ({"max_bin": 1}, "max_bin=1: expected at least 2 bins"),
    ],
    ids=["learning-rate", "depthwise-without-depth", "encoding", "a-network-setting", "bins"],
)
def test_bad_settings_are_refused_before_anything_runs(sample_features, tmp_path, settings, message):
    with pytest.raises(ConfigError) as err:
        launch.train(
            **_inputs(sample_features),
            model_dir=str(tmp_path / "model"),
            training=settings,
            model_family="xgboost",
            backend="local",
            echo=lambda _: None,
        )
    assert message in str(err.value)
    assert not (tmp_path / "model").exists()


def test_native_categories_train_and_serve(sample_features, tmp_path):
    run(_config(sample_features, tmp_path / "model", categorical_encoding="native", **FAST))
    model = load(str(tmp_path / "model"))
    assert model.config["categorical_encoding"] == "native"
    metrics = evaluation.evaluate(model, pq.read_table(sample_features["test_raw"]), {}).metrics
    assert metrics["roc_auc"] > 0.85


@pytest.mark.e2e
def test_a_worker_killed_mid_training_fails_naming_it_and_a_rerun_resumes(sample_features, tmp_path):
    """Without restarts the failure names the worker and the last checkpoint; with one restart
    the group starts again and resumes from it."""
    import signal
    import threading

    import psutil
    from support.waiting import wait_until

    settings = {**FAST, "num_boost_round": 400, "checkpoint_interval": 10}
    work = tmp_path / "training-work"

    def kill_rank_1():
        pointer = work / "checkpoints" / "latest.json"
        wait_until(pointer.exists, what=f"the first checkpoint {pointer}", timeout=120, interval=0.02)
        for process in psutil.Process().children(recursive=True):
            try:
                if (
                    "mlworkloads.training.boosting" in " ".join(process.cmdline())
                    and process.environ().get("RANK") == "1"
                ):
                    process.send_signal(signal.SIGKILL)
                    return
            except psutil.NoSuchProcess:
                continue
        raise AssertionError("no rank-1 worker found")

    killer = threading.Thread(target=kill_rank_1)
    killer.start()
    with pytest.raises(TrainingFailed) as err:
        launch.train(
            **_inputs(sample_features),
            model_dir=str(tmp_path / "model"),
            training=settings,
            model_family="xgboost",
            backend="local",
            nproc_per_node=2,
            echo=lambda _: None,
        )
    killer.join()
    message = str(err.value)
    assert "the XGBoost workers exited with code 1" in message
    assert "worker 1 (rank 1) failed: exitcode -9" in message
    assert "the last checkpoint is round" in message and "running again resumes from it" in message

    lines = []
    launch.train(
        **_inputs(sample_features),
        model_dir=str(tmp_path / "model"),
        training=settings,
        model_family="xgboost",
        backend="local",
        nproc_per_node=2,
        echo=lines.append,
    )
    assert any("resumed after round" in line for line in lines), "".join(lines[-20:])
    assert load(str(tmp_path / "model")).family == "xgboost"
