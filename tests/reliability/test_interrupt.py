"""Ctrl-C during `mlworkloads run` stops every child process and leaves no half-written artifact."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import psutil
import pytest


def _trainer_processes(root_pid):
    try:
        tree = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for process in tree:
        try:
            if "mlworkloads.training" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.e2e
def test_ctrl_c_during_training_stops_all_children_and_leaves_no_partial_files(tmp_path):
    command = [
        sys.executable,
        "-m",
        "mlworkloads",
        "run",
        "training_pipeline",
        "-p",
        "epochs=200",
        "-p",
        "early_stopping_patience=0",
        "-p",
        "max_rows=60000",
        "-p",
        "backend=local",
        "-p",
        "deploy_backend=local",
        "--runs-dir",
        str(tmp_path),
    ]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    seen = []
    while time.monotonic() < deadline and len(seen) < 3:  # torchrun's agent and its 2 workers
        seen = _trainer_processes(run.pid)
        time.sleep(0.2)
    assert len(seen) >= 3, "training never started"

    # Past start-up and mid-training: the first epoch's checkpoint is on disk, the run goes on for 200.
    def checkpointed():
        return list(pathlib.Path(tmp_path).rglob("training-work/checkpoints/latest.json"))

    while time.monotonic() < deadline and not checkpointed():
        time.sleep(0.2)
    assert checkpointed(), "no checkpoint was ever written"
    everything = [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
    os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the foreground group
    assert run.wait(timeout=60) != 0
    gone, alive = psutil.wait_procs(everything, timeout=30)
    assert not alive, [p.cmdline() for p in alive if p.is_running()]
    files = [p for p in pathlib.Path(tmp_path).rglob("*") if p.is_file()]
    assert not [f for f in files if f.name.endswith((".tmp", ".tmp.yaml")) or ".tmp" in f.name]
    assert not list(pathlib.Path(tmp_path).rglob("train-pytorchjob/executor_output.json")), "training had finished"
    for model in (p for p in pathlib.Path(tmp_path).rglob("train-pytorchjob/model") if p.is_dir()):
        assert not any(model.iterdir()), "a model artifact was left half-written"
