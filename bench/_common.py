"""Shared by the bench scripts: timing, peak memory of a child process, and the report format.

Every figure is a ratio taken in one run on one machine (these machines are noisy), printed
last as `name: value (target)`. A script exits 1 when a target is missed, except in --smoke
mode, which runs tiny sizes only to prove the script still works.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="Tiny sizes; checks the script runs, enforces no target.")
    return p


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` runs, in seconds: the least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run_child(code: str, *args: str) -> dict:
    """Runs `code` in a fresh interpreter; it prints one JSON line last, which is returned."""
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


class Report:
    """Collects `name: value (target)` lines and decides the exit code."""

    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.lines: list[str] = []
        self.missed: list[str] = []

    def figure(self, name: str, value: float, target: str = "", ok: bool | None = None, fmt: str = "{:.3g}") -> None:
        shown = fmt.format(value)
        line = f"{name}: {shown}" + (f" ({target})" if target else "")
        if ok is False:
            line += "  MISSED"
            self.missed.append(name)
        self.lines.append(line)

    def finish(self) -> int:
        print("\n".join(self.lines))
        if self.smoke:
            print("smoke mode: targets not enforced")
            return 0
        if self.missed:
            print(f"missed targets: {', '.join(self.missed)}")
            return 1
        return 0
