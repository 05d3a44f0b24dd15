"""The one way the tests wait: a deadline, and on expiry what was awaited and what was last seen.

    wait_until(lambda: path.exists(), what=f"{path} to be written", timeout=30,
               state=lambda: f"trainer exit code {process.poll()}")

A test that waits on something that never comes then fails within its bound with a message a
person can act on ("waited 30 s for runs/x/ckpt to be written; last seen: trainer exit code 1"),
never with a bare ``TimeoutError`` and never by holding the suite until pytest-timeout fires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
#: Watches end server-side after this and are resumed; one that breaks is resumed after a pause.
WATCH_SECONDS, WATCH_RETRY_SECONDS = 300, 1.0


class WaitTimeout(TimeoutError):
    """A wait that ran out. The message names what was awaited and the state last seen."""

    def __init__(self, what: str, timeout: float, last_seen: str):
        self.what, self.timeout, self.last_seen = what, timeout, last_seen
        super().__init__(f"waited {timeout:g} s for {what}; last seen: {last_seen}")


def wait_until(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    state: Callable[[], object] | None = None,
) -> T:
    """Calls ``check`` every ``interval`` s until it returns something truthy, and returns that.

    Args:
        check: what is awaited; an exception it raises ends the wait (it is not retried).
        what: what is awaited, in words, for the error ("pod ns/x to be Ready").
        timeout: seconds before giving up.
        interval: seconds between checks.
        state: describes what was last seen when the wait runs out (an object's conditions, a
            pod's phase and log tail); by default, the last value ``check`` returned.

    Raises:
        WaitTimeout: naming ``what`` and the last state seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout, _describe(state, result))
        time.sleep(interval)


def _describe(state: Callable[[], object] | None, last: object) -> str:
    if state is None:
        return repr(last)
    try:
        return str(state())
    except Exception as error:  # the wait's own error matters more than the description's
        return f"(could not read the state: {type(error).__name__}: {error})"


def keep_watching(what: str, list_call, on_event, stop: threading.Event | None = None, **selectors) -> None:
    """Watches ``list_call`` (a kubernetes client list method) until ``stop`` is set, as an informer does.

    A watch that breaks is logged and resumed after a pause, never in a busy loop against an API
    server that is down; a handler that fails on one event is logged and the watch goes on.
    """
    from kubernetes import watch

    stop = stop or threading.Event()
    while not stop.is_set():
        started = time.monotonic()
        try:
            for event in watch.Watch().stream(list_call, timeout_seconds=WATCH_SECONDS, **selectors):
                try:
                    on_event(event)
                except Exception:
                    log.exception("%s watch: handling a %s event failed", what, event.get("type"))
                if stop.is_set():
                    return
        except Exception:
            if stop.is_set():
                return
            log.exception("%s watch broke; watching again in %.0f s", what, WATCH_RETRY_SECONDS)
            stop.wait(WATCH_RETRY_SECONDS)
            continue
        if time.monotonic() - started < WATCH_RETRY_SECONDS:  # ended at once: do not spin on it
            stop.wait(WATCH_RETRY_SECONDS)
