"""The hang guard's second line: a watchdog for a test that pytest-timeout's alarm cannot end.

pytest-timeout (pyproject.toml: `timeout`, `timeout_method = "signal"`) fails a test that runs
past its limit: its SIGALRM handler prints the stack of every other thread, and the test fails
with its own stack, so the session goes on and its fixtures (the cluster's processes) are torn
down. The "thread" method would print the same stacks but then end the whole run with
`os._exit`, skipping every later test and every teardown, leaving the cluster's processes behind.

A test stuck where SIGALRM cannot reach it (a C call that holds the GIL, the signal blocked) is
caught here: faulthandler's watchdog is a C thread that needs no GIL, and `HANG_GRACE` seconds
after the test's limit it writes every thread's stack to the terminal and ends the run.

tests/conftest.py imports these hooks, so pytest finds them there.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys

HANG_GRACE = 60
_terminal_stderr = None


def pytest_configure(config):
    global _terminal_stderr
    # A copy of the terminal's stderr: during a test, fd 2 is pytest's capture file, which a
    # process that faulthandler ends never prints.
    _terminal_stderr = os.fdopen(os.dup(sys.__stderr__.fileno()), "w")
    # SIGTERM (CI's job limit, `timeout`) ends the run as Ctrl-C does, so the session's fixtures
    # are torn down: the test cluster's processes run in sessions of their own and would outlive it.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_timeout_set_timer(item, settings):
    faulthandler.dump_traceback_later(settings.timeout + HANG_GRACE, exit=True, file=_terminal_stderr)
    # Returns None, so pytest-timeout's own timer is set too (the hook takes the first result).


def pytest_timeout_cancel_timer(item):
    faulthandler.cancel_dump_traceback_later()
