"""Stopping local processes: what the CLI, the local predictor and the local trainer share."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil


def stop_processes(processes: list[psutil.Process], term_grace: float, kill_wait: float = 5.0) -> None:
    """SIGTERMs every live process of `processes`, SIGKILLs those alive after `term_grace`
    seconds, and waits up to `kill_wait` seconds for those to go."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=term_grace)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=kill_wait)


def stop_group(process: subprocess.Popen, grace: float, kill_wait: float | None = 5.0) -> None:
    """SIGTERMs the process group `process` leads (it was started with `start_new_session`),
    SIGKILLs the group if `process` is still alive after `grace` seconds, and waits for it
    (`kill_wait` seconds at most; None: as long as it takes)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=kill_wait)
