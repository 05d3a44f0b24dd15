"""The log digest a failed training step shows: the error lines, wherever they are, then the tail."""

import subprocess
import sys

from mlworkloads.training.logs import digest


def test_an_error_of_a_modules_own_type_is_reported_though_the_tail_has_moved_past_it():
    # A real traceback: Python names an exception outside the builtins by its module.
    crashed = subprocess.run([sys.executable, "-c", "import json; json.loads('{')"], capture_output=True, text=True)
    lines = crashed.stderr.splitlines() + [f"  [bt] ({i}) libxgboost.so(+0x{i:x})" for i in range(40)]
    text = digest(lines, tail=5)
    assert text.startswith("errors reported:\n  json.decoder.JSONDecodeError: Expecting property name")
    assert text.rstrip().endswith("[bt] (39) libxgboost.so(+0x27)")


def test_a_builtin_error_and_a_launchers_error_line_are_reported_once():
    lines = ["ValueError: bad value", "noise", "ValueError: bad value", "error: the job failed", "tail"]
    assert digest(lines, tail=1) == "errors reported:\n  ValueError: bad value\n  error: the job failed\ntail\n"
