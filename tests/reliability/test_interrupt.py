"""Ctrl-C during `mlworkloads run` stops every child process and leaves no half-written artifact."""

import os
import pathlib
import signal
import subprocess
import sys

import psutil
import pytest
from support.waiting import wait_until


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


BUSY = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"


@pytest.fixture
def both_cores_busy():
    """Two busy loops, one per core, each ending by itself after 120 s: the load under which
    Ctrl-C once left `mlworkloads run` alive for over 60 s."""
    loops = [
        subprocess.Popen(
            [sys.executable, "-c", "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"]
        )
        for _ in range(os.cpu_count() or 2)
    ]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


@pytest.mark.e2e
def test_ctrl_c_during_training_stops_all_children_and_leaves_no_partial_files(tmp_path, both_cores_busy):
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
    state = lambda: f"run exit code {run.poll()}, trainer processes {_trainer_processes(run.pid)}"  # noqa: E731
    wait_until(
        lambda: len(_trainer_processes(run.pid)) >= 3, what="torchrun's agent and its 2 workers to start",
        timeout=180, state=state,
    )  # fmt: skip

    # Past start-up and mid-training: the first epoch's checkpoint is on disk, the run goes on for 200.
    def checkpointed():
        return list(pathlib.Path(tmp_path).rglob("training-work/checkpoints/latest.json"))

    wait_until(checkpointed, what="the first epoch's checkpoint", timeout=120, state=state)
    everything = [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
    os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the foreground group
    assert run.wait(timeout=10) == 130  # within 10 s, however loaded the machine
    gone, alive = psutil.wait_procs(everything, timeout=5)
    assert not alive, [p.cmdline() for p in alive if p.is_running()]
    files = [p for p in pathlib.Path(tmp_path).rglob("*") if p.is_file()]
    assert not [f for f in files if f.name.endswith((".tmp", ".tmp.yaml")) or ".tmp" in f.name]
    assert not list(pathlib.Path(tmp_path).rglob("train-pytorchjob/executor_output.json")), "training had finished"
    for model in (p for p in pathlib.Path(tmp_path).rglob("train-pytorchjob/model") if p.is_dir()):
        assert not any(model.iterdir()), "a model artifact was left half-written"


STUBBORN_RUN = """
import sys
from kfp import dsl
from mlworkloads.local_run import run_locally

@dsl.component
def stubborn():
    import signal, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("stubborn step ready", flush=True)
    time.sleep(300)

@dsl.pipeline(name="stubborn")
def stubborn_pipeline():
    stubborn()

try:
    run_locally(stubborn_pipeline, {}, sys.argv[1])
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.e2e
def test_ctrl_c_ends_a_local_run_within_10_s_even_when_a_step_ignores_it(tmp_path):
    """kfp.local runs each step in a worker thread and waits for it on Ctrl-C; a step that does not
    stop (here it ignores SIGINT and SIGTERM; a loaded torchrun agent takes up to 40 s) held the
    whole run. Now everything the run started is stopped within the grace period."""
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN_RUN)
    output = tmp_path / "stubborn.out"
    with open(output, "wb") as out:
        run = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "runs")], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def started() -> bool:
        logs = list((tmp_path / "runs").glob("*/run.log"))
        return bool(logs) and "stubborn step ready" in logs[0].read_text()

    def state() -> str:
        return f"run exit code {run.poll()}, its output ends:\n{output.read_text(errors='replace')[-2000:]}"

    try:
        wait_until(started, what="the stubborn step to start", timeout=120, state=state)
    except TimeoutError:
        run.kill()
        raise
    everything = [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
    os.killpg(run.pid, signal.SIGINT)
    assert run.wait(timeout=10) == 130
    _, alive = psutil.wait_procs(everything, timeout=5)
    assert not alive
