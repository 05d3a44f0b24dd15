"""Running a test's own server program: started, awaited until its ready URL answers 200, and
stopped (with anything it started) however the test ends."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
from collections.abc import Iterator

import httpx

from mlworkloads.serving.local_server import stop_process_tree
from support.waiting import wait_until


@contextlib.contextmanager
def server_process(
    command: list[str], log: pathlib.Path, ready_url: str, what: str, timeout: float, env: dict | None = None
) -> Iterator[subprocess.Popen]:
    """Runs `command` (output to `log`) until the block exits; yields once `ready_url` answers 200.

    Raises:
        RuntimeError: the program exits before it is ready (with the end of its log).
        support.waiting.WaitTimeout: it is not ready within `timeout` seconds.
    """
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    return httpx.get(ready_url, timeout=2).status_code == 200
                return False

            wait_until(
                ready, what=f"{what} to answer {ready_url}", timeout=timeout, state=lambda: log.read_text()[-500:]
            )
            yield process
        finally:
            stop_process_tree(process)
