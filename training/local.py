"""The local backend: `torchrun --standalone` as a child process, its log streamed to ours."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable

import psutil

from mlworkloads.processes import stop_group
from mlworkloads.training.checkpoint import latest_pointer
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.logs import digest

LOG_TAIL_LINES = 40


class TrainingFailed(RuntimeError):
    """Training exited non-zero; the message carries the log tail and the checkpoint to resume."""


def torchrun_command(config_path: str, nproc_per_node: int, max_restarts: int = 0) -> list[str]:
    """The command line: the same trainer entry point the PyTorchJob replicas run."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc_per_node}",
        f"--max-restarts={max_restarts}",
        "-m",
        "mlworkloads.training",
        "--config",
        config_path,
    ]


def run_torchrun(
    config: TrainConfig,
    nproc_per_node: int = 2,
    max_restarts: int = 0,
    echo: Callable[[str], None] = lambda line: print(line, end="", flush=True),
    env: dict[str, str] | None = None,
) -> None:
    """Runs the trainer with torchrun on this machine and waits for it.

    The child runs in its own process group; if this process is interrupted (Ctrl-C or
    SIGTERM) the whole group is stopped, so no torchrun worker is left behind.

    Raises:
        TrainingFailed: with the failing rank's log tail and where the last checkpoint is.
    """
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node={nproc_per_node!r}: expected at least 1 process.")
    tail: collections.deque[str] = collections.deque(maxlen=4 * LOG_TAIL_LINES)
    with tempfile.TemporaryDirectory(prefix="mlworkloads-train-") as tmp:
        config_path = os.path.join(tmp, "config.json")
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(config.to_json())
        command = torchrun_command(config_path, nproc_per_node, max_restarts)
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        with (
            subprocess.Popen(
                command,
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
        pointer = latest_pointer(config.checkpoint_uri)
        where = (
            f"the last checkpoint is epoch {pointer['epoch'] + 1} at "
            f"{config.checkpoint_uri}/{pointer['file']}; "
            "running again resumes from it"
            if pointer
            else "no checkpoint was written"
        )
        raise TrainingFailed(
            f"torchrun exited with code {code}; {where}.\n{_failure_summary(tail)}--- log ---\n"
            + digest(list(tail), LOG_TAIL_LINES)
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
