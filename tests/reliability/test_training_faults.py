"""A training process killed mid-run: elastic recovery from the checkpoint, or a clear failure and a resume."""

import json
import os
import signal
import threading

import psutil
import pytest
import torch
from support.waiting import wait_until

from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import TrainingFailed
from mlworkloads.training.local import run_torchrun

SETTINGS = dict(epochs=5, batch_size=256, seed=9, early_stopping_patience=0)


def _config(features, out):
    return TrainConfig(
        train_uri=features["train"],
        validation_uri=features["validation"],
        preprocessor_uri=features["preprocessor"],
        output_uri=str(out),
        **SETTINGS,
    )


def _kill_one_worker_after_first_checkpoint(config):
    """SIGKILLs rank 1's process once a checkpoint exists; returns the epoch it was killed after."""
    pointer = os.path.join(config.checkpoint_uri, "latest.json")
    wait_until(lambda: os.path.exists(pointer), what=f"the first checkpoint {pointer}", timeout=120, interval=0.02)
    # torchrun's workers are this test's descendants running the trainer module; rank 1 dies.
    workers = []
    for process in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(process.cmdline())
            trainer = "mlworkloads.training" in cmdline and "torch.distributed.run" not in cmdline
            if trainer and process.environ().get("RANK") == "1":
                workers.append(process)
        except psutil.NoSuchProcess:
            continue
    assert workers, "no rank-1 worker found"
    with open(pointer) as f:
        epoch = json.load(f)["epoch"]
    workers[0].send_signal(signal.SIGKILL)
    return epoch


def _weights(directory):
    return torch.load(os.path.join(directory, "model.pt"), weights_only=True)


@pytest.mark.e2e
def test_with_max_restarts_a_killed_worker_is_restarted_and_training_ends_as_if_uninterrupted(
    sample_features, tmp_path
):
    run_torchrun(_config(sample_features, tmp_path / "straight"), nproc_per_node=2, echo=lambda _: None)
    config = _config(sample_features, tmp_path / "elastic")
    lines, killed = [], {}
    killer = threading.Thread(target=lambda: killed.update(epoch=_kill_one_worker_after_first_checkpoint(config)))
    killer.start()
    run_torchrun(config, nproc_per_node=2, max_restarts=1, echo=lines.append)
    killer.join()
    assert killed["epoch"] < SETTINGS["epochs"] - 1
    assert any("resumed after epoch" in line for line in lines), "".join(lines[-30:])
    straight, elastic = _weights(tmp_path / "straight"), _weights(tmp_path / "elastic")
    assert max(float((straight[k] - elastic[k]).abs().max()) for k in straight) < 1e-5


@pytest.mark.e2e
def test_without_restarts_the_failure_names_the_rank_and_the_checkpoint_and_a_rerun_resumes(sample_features, tmp_path):
    config = _config(sample_features, tmp_path / "model")
    killer = threading.Thread(target=_kill_one_worker_after_first_checkpoint, args=(config,))
    killer.start()
    with pytest.raises(TrainingFailed) as err:
        run_torchrun(config, nproc_per_node=2, echo=lambda _: None)
    killer.join()
    message = str(err.value)
    assert "rank: 1" in message.replace("rank      :", "rank:") or "rank 1" in message, message[-1500:]
    assert "SIGKILL" in message or "exitcode  : -9" in message, message[-1500:]
    assert f"at {config.checkpoint_uri}/checkpoint-" in message and "running again resumes from it" in message
    lines = []
    run_torchrun(config, nproc_per_node=2, echo=lines.append)
    assert any("resumed after epoch" in line for line in lines)
