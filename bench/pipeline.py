"""Orchestration: compile time, and the local runner's per-step overhead on training_pipeline.

Run: .venv/bin/python bench/pipeline.py [--smoke]

A step's own work is the time between the KFP executor starting the component function and
writing its outputs (its own log lines); the rest of the step's wall time is the local
runner's overhead: a fresh interpreter, importing kfp and the component's module, resolving
inputs and writing outputs.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import Report, parser  # noqa: E402

TASK_START = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - Executing task .*'(?P<task>[\w-]+)'")
TASK_END = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - Task .*'(?P<task>[\w-]+)'.* finished with status")
WORK_START = re.compile(r"\[KFP Executor (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) INFO\]: Looking for component")
WORK_END = re.compile(r"\[KFP Executor (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) INFO\]: Wrote executor output")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _clock(stamp: str) -> float:
    stamp = stamp.split(" ")[-1].replace(",", ".")
    t = datetime.datetime.strptime(stamp, "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def step_times(log: str) -> dict[str, tuple[float, float]]:
    """task -> (wall seconds, own-work seconds), from kfp.local's and the executor's log lines."""
    result, current, starts = {}, None, {}
    for line in (ANSI.sub("", raw) for raw in log.splitlines()):
        if m := TASK_START.search(line):
            current = m["task"]
            starts[current] = {"wall": _clock(m[1])}
        elif (m := WORK_START.search(line)) and current:
            starts[current]["work"] = _clock(m[1])
        elif (m := WORK_END.search(line)) and current:
            starts[current]["work_end"] = _clock(m[1])
        elif m := TASK_END.search(line):
            s = starts.get(m["task"], {})
            if "work" in s and "work_end" in s:
                result[m["task"]] = (_clock(m[1]) - s["wall"], s["work_end"] - s["work"])
    return result


def main() -> int:
    args = parser(__doc__).parse_args()
    report = Report(args.smoke)
    cli = [sys.executable, "-m", "mlworkloads"]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([*cli, "compile", "--out", os.path.join(tmp, "c")], check=True, capture_output=True)
        compile_seconds = time.perf_counter() - started
        rows = "10000" if args.smoke else "60000"
        started = time.perf_counter()
        run = subprocess.run([*cli, "run", "training_pipeline", "-p", f"max_rows={rows}", "-p", "epochs=2",
                              "-p", "backend=local", "-p", "deploy_backend=local", "--runs-dir", tmp],
                             check=True, capture_output=True, text=True)  # fmt: skip
        total = time.perf_counter() - started
    steps = step_times(run.stdout + run.stderr)
    report.figure("pipeline.compile_all_seconds", compile_seconds, "<= 10 s", compile_seconds <= 10)
    report.figure("pipeline.training_pipeline_wall_seconds", total, f"{rows} rows, 2 epochs")
    work = sum(w for _, w in steps.values())
    report.figure("pipeline.sum_of_steps_own_work_seconds", work)
    report.figure("pipeline.local_runner_overhead_seconds", total - work, "no target yet")
    for task, (wall, own) in steps.items():
        report.figure(f"pipeline.step.{task}.overhead_seconds", wall - own, f"wall {wall:.2f} s, own work {own:.2f} s")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
