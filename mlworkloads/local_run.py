"""Running a pipeline on this machine with `kfp.local.SubprocessRunner(use_venv=False)`."""

from __future__ import annotations

import datetime
import os
import warnings

import kfp.local


def run_locally(pipeline_func, parameters: dict, runs_dir: str = "runs") -> str:
    """Runs `pipeline_func` with `parameters`; returns the run's pipeline root.

    Every component runs as a subprocess of this Python interpreter, which has this package
    installed, exactly as the same code runs in the component image in a cluster.

    Raises:
        RuntimeError: when a step fails (kfp.local's error names the task).
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    root = os.path.abspath(os.path.join(runs_dir, f"{pipeline_func.name}-{stamp}"))
    os.makedirs(root, exist_ok=True)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=root,
        raise_on_error=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        pipeline_func(**parameters)
    return root


def list_artifacts(root: str) -> list[tuple[str, str, int]]:
    """(task, output path, size in bytes) for every file the run wrote, in task order."""
    found = []
    for directory, _, files in os.walk(root):
        for name in files:
            if name == "executor_output.json":
                continue
            path = os.path.join(directory, name)
            parts = os.path.relpath(path, root).split(os.sep)
            task = parts[1] if len(parts) > 2 else parts[0]
            found.append((task, path, os.path.getsize(path)))
    return sorted(found, key=lambda item: (os.path.getmtime(item[1]), item[1]))


def find_output(root: str, task: str, name: str) -> str:
    """The path of output `name` of `task` in a local run (the last one, if the task ran twice)."""
    matches = sorted(
        os.path.join(directory, name)
        for directory, dirs, files in os.walk(root)
        if os.path.basename(directory) == task and (name in files or name in dirs)
    )
    if not matches:
        raise FileNotFoundError(f"no output {name!r} of task {task!r} under {root}")
    return matches[-1]
