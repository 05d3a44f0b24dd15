"""Every bench script runs in its smoke mode (tiny sizes), so none of them rots."""

import pathlib
import re
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).parents[1] / "bench"


@pytest.mark.e2e
@pytest.mark.parametrize("script", ["data.py", "training.py", "boosting.py", "serving.py", "pipeline.py"])
def test_bench_script_runs_and_prints_its_figures_last(script):
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = [
        line for line in result.stdout.splitlines() if re.match(r"^[\w.-]+: [-0-9.e+]+( \(.*\))?( +MISSED)?$", line)
    ]
    assert len(figures) >= 4, result.stdout[-2000:]
    assert result.stdout.rstrip().endswith("smoke mode: targets not enforced")
