"""The trainer for real: torchrun with gloo on CPU, on the real flights features."""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
import torch
from support.waiting import wait_until

from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import ConfigError, TrainingFailed
from mlworkloads.training.local import kill_tree, run_torchrun, torchrun_command
from mlworkloads.training.trainer import run


def _config(features, out, **overrides):
    values = dict(
        train_uri=features["train"],
        validation_uri=features["validation"],
        preprocessor_uri=features["preprocessor"],
        output_uri=str(out),
    )
    values.update(overrides)
    return TrainConfig(**values)


def _weights(model_dir):
    return torch.load(os.path.join(model_dir, "model.pt"), weights_only=True)


def _max_difference(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.e2e
def test_training_on_flights_beats_a_constant_predictor(flights_features, tmp_path):
    summary = run(_config(flights_features, tmp_path / "model", epochs=3, learning_rate=0.002))
    auc = summary["metrics"]["validation_roc_auc"]
    print(f"validation ROC AUC on the full flights table: {auc:.4f}")
    assert auc > 0.85  # a constant predictor scores 0.5
    document = json.loads((tmp_path / "model" / "model.json").read_text())
    assert document["feature_spec"]["task"] == "binary" and document["world_size"] == 1


@pytest.mark.e2e
def test_one_and_two_process_ddp_end_with_the_same_weights(sample_features, tmp_path):
    settings = dict(epochs=2, batch_size=512, dropout=0.0, seed=3, early_stopping_patience=0)
    run_torchrun(_config(sample_features, tmp_path / "one", **settings), nproc_per_node=1, echo=lambda _: None)
    run_torchrun(_config(sample_features, tmp_path / "two", **settings), nproc_per_node=2, echo=lambda _: None)
    assert _max_difference(_weights(tmp_path / "one"), _weights(tmp_path / "two")) < 1e-4
    assert json.loads((tmp_path / "two" / "model.json").read_text())["world_size"] == 2


@pytest.mark.e2e
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_same_weights(sample_features, tmp_path):
    settings = dict(epochs=6, batch_size=256, seed=5, early_stopping_patience=0)
    run_torchrun(_config(sample_features, tmp_path / "straight", **settings), nproc_per_node=2, echo=lambda _: None)

    killed = _config(sample_features, tmp_path / "killed", **settings)
    config_path = tmp_path / "killed.json"
    config_path.write_text(killed.to_json())
    process = subprocess.Popen(
        torchrun_command(str(config_path), 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pointer = tmp_path / "killed-checkpoints" / "latest.json"
    wait_until(
        lambda: pointer.exists() or process.poll() is not None, what=f"the first checkpoint {pointer}",
        timeout=120, interval=0.02, state=lambda: f"torchrun exit code {process.poll()}",
    )  # fmt: skip
    # SIGKILL the agent and its workers, as a node failure would: nothing gets to clean up.
    workers = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    kill_tree(workers)
    process.wait()
    assert pointer.exists(), "no checkpoint was written before the kill"
    assert not (tmp_path / "killed" / "model.json").exists(), "the run finished before it could be killed"
    first = json.loads(pointer.read_text())["epoch"]
    assert first < settings["epochs"] - 1

    lines = []
    run_torchrun(killed, nproc_per_node=2, echo=lines.append)
    assert any(f"resumed after epoch {first}" in line for line in lines), "".join(lines)
    assert _max_difference(_weights(tmp_path / "straight"), _weights(tmp_path / "killed")) < 1e-5


def test_a_failing_run_names_the_checkpoint_to_resume_from(sample_features, tmp_path):
    config = _config(sample_features, tmp_path / "m", epochs=1)
    os.makedirs(config.checkpoint_uri)
    (tmp_path / "m-checkpoints" / "latest.json").write_text(
        '{"file": "checkpoint-00000.pt", "epoch": 0, "bytes": 5, "sha256": "00"}'
    )
    (tmp_path / "m-checkpoints" / "checkpoint-00000.pt").write_bytes(b"trunc")
    with pytest.raises(TrainingFailed) as err:
        run_torchrun(config, nproc_per_node=1, echo=lambda _: None)
    assert "is truncated or corrupted" in str(err.value)
    assert "the last checkpoint is epoch 1" in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 0}, "learning_rate=0: expected a number > 0"),
        ({"learning_rate": -1e-3}, "learning_rate=-0.001"),
        ({"learning_rate": "fast"}, "learning_rate='fast': expected a finite number"),
        ({"learning_rate": float("nan")}, "learning_rate=nan"),
        ({"epochs": 0}, "epochs=0: expected a positive integer"),
        ({"batch_size": 1.5}, "batch_size=1.5"),
        ({"hidden_sizes": []}, "hidden_sizes=[]"),
        ({"dropout": 1.5}, "dropout=1.5"),
        ({"lr_schedule": "step"}, "lr_schedule='step'"),
        ({"model_factory": "no_colon"}, "model_factory='no_colon'"),
        ({"train_uri": ""}, "train_uri is empty"),
    ],
)
def test_bad_training_settings_are_refused_naming_the_field(overrides, message):
    features = {"train": "t", "validation": "v", "preprocessor": "p"}
    with pytest.raises(ConfigError) as err:
        _config(features, "out", **overrides)
    assert message in str(err.value)


def test_entry_point_refuses_an_unknown_model_factory_before_training(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "train_uri": "t",
                "validation_uri": "v",
                "preprocessor_uri": "p",
                "output_uri": "o",
                "model_factory": "no_such_module:build",
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mlworkloads.training", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "model_factory='no_such_module:build': cannot import module 'no_such_module'" in result.stderr


def test_a_custom_model_factory_builds_the_network(sample_features, tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "class Linear(torch.nn.Module):\n"
        "    def __init__(self, spec):\n"
        "        super().__init__()\n"
        "        self.layer = torch.nn.Linear(spec['numeric_width'], spec['output_size'])\n"
        "    def forward(self, numeric, categorical):\n"
        "        return self.layer(numeric)\n"
        "def build(spec, architecture):\n"
        "    return Linear(spec)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    summary = run(
        _config(
            sample_features,
            tmp_path / "m",
            epochs=3,
            learning_rate=0.05,
            lr_schedule="constant",
            model_factory="my_models:build",
        )
    )
    assert summary["metrics"]["validation_roc_auc"] > 0.6
    assert set(_weights(tmp_path / "m")) == {"layer.weight", "layer.bias"}
