"""Stopping local processes: what the CLI, the local predictor and the local trainer share."""

from __future__ import annotations

import contextlib

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
