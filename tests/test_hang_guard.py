"""The hang guard itself: a test that never ends fails within its limit, printing every thread's stack.

Each case runs pytest in a subprocess with this repo's own configuration (pyproject.toml: its
timeout method, its conftest and the fallback watchdog), a short limit, and a test file that hangs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.waiting import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parent.parent

HANGS = """
import signal
import threading


def background_thread_body():
    threading.Event().wait()


def test_waits_for_what_never_comes():
    threading.Thread(target=background_thread_body, name="background", daemon=True).start()
    threading.Event().wait()


def test_after_it():
    assert True


def test_deaf_to_the_alarm():
    # SIGALRM blocked, as in a C call that never returns to the interpreter: only the fallback
    # watchdog can end this one.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    threading.Event().wait()
"""


def run_pytest(tmp_path: Path, selection: str, limit: int, grace: int) -> tuple[subprocess.CompletedProcess, float]:
    """Runs the hanging file's tests matching ``selection`` with this repo's settings and hang guard."""
    tests = tmp_path / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "test_hangs.py").write_text(HANGS)
    (tests / "conftest.py").write_text(
        "from support import hang_guard\n"
        "from support.hang_guard import *  # noqa: F403\n"
        f"hang_guard.HANG_GRACE = {grace}\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path),
            "-p", "no:cacheprovider", "-o", f"timeout={limit}", "-k", selection, str(tests / "test_hangs.py"),
        ],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
    )  # fmt: skip
    return done, time.monotonic() - started


def test_a_hanging_test_fails_at_its_limit_with_every_threads_stack_and_the_suite_goes_on(tmp_path):
    done, seconds = run_pytest(tmp_path, "waits_for_what_never_comes or after_it", limit=3, grace=60)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "1 failed, 1 passed" in out, out  # only the hanging test failed; the next one still ran
    assert "Timeout (>3.0s) from pytest-timeout" in out, out
    assert "Stack of background" in out and "background_thread_body" in out, out  # the other thread
    assert "test_waits_for_what_never_comes" in out, out  # the test's own stack
    assert seconds < 60, f"took {seconds:.0f} s"


def test_a_test_the_alarm_cannot_reach_is_ended_by_the_watchdog_with_every_threads_stack(tmp_path):
    done, seconds = run_pytest(tmp_path, "deaf_to_the_alarm", limit=2, grace=3)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Timeout (0:00:05)!" in out, out  # faulthandler's own header, after limit + grace
    assert "test_deaf_to_the_alarm" in out and "Thread 0x" in out, out
    assert seconds < 60, f"took {seconds:.0f} s"


def test_a_wait_that_runs_out_names_what_it_waited_for_and_what_it_last_saw():
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as error:
        wait_until(lambda: None, what="pod ns/p to be Ready", timeout=0.3, interval=0.05, state=lambda: "phase Pending")
    assert str(error.value) == "waited 0.3 s for pod ns/p to be Ready; last seen: phase Pending"
    assert 0.3 <= time.monotonic() - started < 5
    assert isinstance(error.value, TimeoutError)


def test_a_wait_returns_what_it_waited_for():
    values = iter([0, "", "ready"])
    assert wait_until(lambda: next(values), what="a value", timeout=5, interval=0.01) == "ready"
