"""The local backend: a command under `torchrun --standalone` as a child process, its log streamed to ours."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable

import psutil

from mlworkloads.processes import stop_group
from mlworkloads.training.checkpoint import latest_pointer
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import TrainingFailed
from mlworkloads.training.logs import digest
from mlworkloads.training.torchrun import local_command

LOG_TAIL_LINES = 40


#: The built-in trainer, as every process runs it (`--config` is added per run).
TRAINER_COMMAND = ["python", "-m", "mlworkloads.training"]


def torchrun_command(config_path: str, nproc_per_node: int, max_restarts: int = 0) -> list[str]:
    """The built-in trainer's command line: the same entry point the cluster's nodes run."""
    return local_command([*TRAINER_COMMAND, "--config", config_path], nproc_per_node, max_restarts)


def run_local(
    command: list[str],
    nproc_per_node: int = 2,
    max_restarts: int = 0,
    echo: Callable[[str], None] = lambda line: print(line, end="", flush=True),
    env: dict[str, str] | None = None,
    explain_failure: Callable[[], str] = lambda: "",
    framework: str = "torch",
) -> None:
    """Runs `command` under `torchrun --standalone` (XGBoost: `spawn.py`) on this machine and waits for it.

    The child runs in its own process group; if this process is interrupted (Ctrl-C or
    SIGTERM) the whole group is stopped, so no torchrun worker is left behind.

    Args:
        command: What each process runs (`torchrun.local_command` adds torchrun).
        framework: "torch", or "xgboost": `nproc_per_node` XGBoost workers (`spawn.local_command`).
        explain_failure: Adds to the error what the caller knows (e.g. where to resume from).

    Raises:
        TrainingFailed: with torchrun's report of the failing rank and the log tail.
    """
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node={nproc_per_node!r}: expected at least 1 process.")
    from mlworkloads.training import spawn

    launcher = spawn.local_command if framework == "xgboost" else local_command
    tail: collections.deque[str] = collections.deque(maxlen=4 * LOG_TAIL_LINES)
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with (
        subprocess.Popen(
            launcher(command, nproc_per_node, max_restarts),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=child_env,
            start_new_session=True,
        ) as process,
        _stop_group_on_exit(process),
    ):
        for line in process.stdout:
            tail.append(line)
            echo(line)
        code = process.wait()
    if code != 0:
        why = explain_failure()
        launched = "the XGBoost workers" if framework == "xgboost" else "torchrun"
        raise TrainingFailed(
            f"{launched} exited with code {code}{'; ' + why if why else ''}.\n{_failure_summary(tail)}--- log ---\n"
            + digest(list(tail), LOG_TAIL_LINES)
        )


def resume_hint(checkpoint_uri: str) -> str:
    """Where the built-in trainer's last checkpoint is, for a failure's message."""
    pointer = latest_pointer(checkpoint_uri)
    if not pointer:
        return "no checkpoint was written"
    unit = pointer.get("unit", "epoch")
    return (
        f"the last checkpoint is {unit} {pointer['epoch'] + 1} at {checkpoint_uri}/{pointer['file']}; "
        "running again resumes from it"
    )


def run_torchrun(
    config: TrainConfig,
    nproc_per_node: int = 2,
    max_restarts: int = 0,
    echo: Callable[[str], None] = lambda line: print(line, end="", flush=True),
    env: dict[str, str] | None = None,
) -> None:
    """Runs the built-in trainer on this machine (`run_local`) and waits for it.

    Raises:
        TrainingFailed: with the failing rank's log tail and where the last checkpoint is.
    """

    with tempfile.TemporaryDirectory(prefix="mlworkloads-train-") as tmp:
        config_path = os.path.join(tmp, "config.json")
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(config.to_json())
        run_local(
            [*TRAINER_COMMAND, "--config", config_path],
            nproc_per_node,
            max_restarts,
            echo=echo,
            env=env,
            explain_failure=lambda: resume_hint(config.checkpoint_uri),
        )


def _failure_summary(tail) -> str:
    """torchrun's own report names the failed rank; repeat it first."""
    lines = [line.strip() for line in tail if "rank" in line and ("exitcode" in line or "Failures" in line)]
    return "" if not lines else "failed: " + "; ".join(lines[-3:]) + "\n"


@contextlib.contextmanager
def _stop_group_on_exit(process: subprocess.Popen):
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    in_main_thread = _is_main_thread()
    if in_main_thread:
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        if process.poll() is None:
            _kill_group(process)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _kill_group(process: subprocess.Popen, grace_seconds: float = 3.0) -> None:
    """Stops torchrun and every worker it started.

    torchrun's agent stops its workers on SIGTERM; the workers run in process groups of their
    own, so anything still alive after the grace period is killed by walking the process tree.
    """
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    stop_group(process, grace_seconds, kill_wait=None)
    kill_tree(tree)


def kill_tree(processes: list[psutil.Process]) -> None:
    """SIGKILLs the given processes that are still alive and waits for them."""
    for child in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(processes, timeout=5)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
