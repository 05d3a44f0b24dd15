"""Running a pipeline on this machine with `kfp.local.SubprocessRunner(use_venv=False)`.

kfp.local prints everything (its own log, each task's executor input and the task's output)
to stdout. `run_locally` sends all of it to `run.log` in the run directory and tells the
caller, one event at a time, when a task starts and ends and which lines of its output matter,
so a terminal shows progress instead of executor-input JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable

import kfp.local

from mlworkloads.errors import StepFailed
from mlworkloads.processes import stop_processes
from mlworkloads.training.job_launch import WORK_DIR_NAME

LOG_NAME = "run.log"
#: Scratch directories steps keep beside their outputs (the local training backend's checkpoints).
SCRATCH = {WORK_DIR_NAME}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r" - INFO - Executing task '([^']+)'")
_FINISHED = re.compile(r" - (?:INFO|ERROR) - Task '([^']+)' finished with status (\w+)")
# The last line of a Python traceback: `module.ErrorType: message`.
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Failed|Exit|Interrupt)\w*)(?:: (.*))?$")
# Log prefixes before a message: `[KFP Executor 2026-... INFO]:`, torchrun's `[default0]:`, the local
# XGBoost workers' `[worker0]:` before the trainer's timestamp, a pod name.
_PREFIX = re.compile(r"^(?:\[[^\]]*\]:?\s*)*(?:\d{4}-\d\d-\d\d[ T][\d:,.]+\s+)?(?:\[[^\]]*\]:?\s*)+")
# Messages of a task's output a person wants to see as they come (the figures that matter).
HIGHLIGHTS = re.compile(
    r"^(ingested|split \d+|fitted|training \w+ (?:boosted trees )?on|epoch \d+/\d+|early stop|gate|smoke test"
    r"|best trial|held-out accuracy|verified|canary verified|created InferenceService|promoted|rolled back"
    r"|local predictor ready)\b"
)


@dataclasses.dataclass
class TaskEvent:
    """What `run_locally` reports: a task `started`, printed a `line` worth showing, or `ended`."""

    kind: str
    task: str
    text: str = ""
    status: str = ""
    seconds: float = 0.0


#: After Ctrl-C, how long the steps get to stop on their own (they got SIGINT from the terminal,
#: and stop their own children), then how long after SIGTERM before everything left is killed.
STOP_GRACE_SECONDS = 4.0
KILL_AFTER_TERM_SECONDS = 1.5


def stop_descendants(grace: float = STOP_GRACE_SECONDS, after_term: float = KILL_AFTER_TERM_SECONDS) -> None:
    """Waits `grace` seconds for every process this one started to exit, then SIGTERMs and
    finally SIGKILLs what is left: torchrun and its workers (in sessions of their own), servers.

    kfp.local runs each step in a worker thread and, on Ctrl-C, waits for that thread, which
    waits for the step's process: without this a loaded machine kept a run alive for minutes.
    """
    import psutil

    try:
        tree = psutil.Process().children(recursive=True)
    except psutil.NoSuchProcess:  # pragma: no cover - this process always exists
        return
    _, alive = psutil.wait_procs(tree, timeout=grace)
    stop_processes(alive, term_grace=after_term, kill_wait=2.0)


@contextlib.contextmanager
def _stop_children_on_interrupt():
    """Ctrl-C (SIGINT) or SIGTERM: a watchdog thread bounds how long the steps take to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    watchdogs: list[threading.Thread] = []

    def on_signal(signum, frame):
        # A second Ctrl-C means now: no grace.
        grace = STOP_GRACE_SECONDS if not watchdogs else 0.0
        watchdog = threading.Thread(target=stop_descendants, args=(grace,), daemon=True)
        watchdogs.append(watchdog)
        watchdog.start()
        raise KeyboardInterrupt

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        # However the interrupt unwound kfp.local (it may not wait for its step processes), this
        # process ends only once everything it started has stopped.
        for watchdog in watchdogs:
            watchdog.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _RunLog(io.TextIOBase):
    """A stdout stand-in: appends every line to the log file and turns kfp.local's output into events."""

    def __init__(self, path: str, on_event: Callable[[TaskEvent], None], echo: Callable[[str], None] | None):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.callbacks_event, self.callbacks_echo = on_event, echo
        self.terminal = sys.stdout  # what the callbacks print to, while stdout is this log
        self.pending = ""
        self.task = ""
        self.started = 0.0
        self.output: dict[str, list[str]] = {}
        self.lock = threading.RLock()

    def on_event(self, event: TaskEvent) -> None:
        with contextlib.redirect_stdout(self.terminal):
            self.callbacks_event(event)

    def echo(self, line: str) -> None:
        with contextlib.redirect_stdout(self.terminal):
            self.callbacks_echo(line)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            self.pending += text
            *lines, self.pending = self.pending.split("\n")
            for line in lines:
                self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        if not self.file.closed:
            self.file.flush()

    def close(self) -> None:
        with self.lock:
            if self.pending:
                self._line(_ANSI.sub("", self.pending))
                self.pending = ""
        super().close()
        self.file.close()

    def _line(self, line: str) -> None:
        self.file.write(line + "\n")
        self.file.flush()  # so that `tail -f run.log` follows the run
        if self.callbacks_echo:
            self.echo(line)
        if match := _STARTED.search(line):
            self.task, self.started = match[1], time.monotonic()
            self.output[self.task] = []
            self.on_event(TaskEvent("started", self.task))
            return
        if match := _FINISHED.search(line):
            self.on_event(TaskEvent("ended", match[1], status=match[2], seconds=time.monotonic() - self.started))
            self.task = ""
            return
        if self.task and line.startswith("    "):  # kfp.local indents the task's own output
            own = line[4:].rstrip()
            self.output[self.task].append(own)
            message = _PREFIX.sub("", own.strip())
            if HIGHLIGHTS.match(message):
                self.on_event(TaskEvent("line", self.task, text=message))

    def error_of(self, task: str) -> str:
        """The task's own error: the last exception line of its output and what follows it."""
        lines = [line for line in self.output.get(task, []) if line.strip()]
        for index in range(len(lines) - 1, -1, -1):
            if _EXCEPTION.match(lines[index].strip()):
                return "\n".join(line.strip() for line in lines[index : index + 40])
        return "\n".join(lines[-10:]) or "no output"


def run_locally(
    pipeline_func,
    parameters: dict,
    runs_dir: str = "runs",
    on_event: Callable[[TaskEvent], None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> str:
    """Runs `pipeline_func` with `parameters`; returns the run's pipeline root.

    Every component runs as a subprocess of this Python interpreter, which has this package
    installed, exactly as the same code runs in the component image in a cluster. kfp.local's
    whole output goes to `<root>/run.log`; `on_event` hears of each task's start, end and
    highlighted lines, and `echo` (if given) gets every line as well.

    Ctrl-C stops every step's processes within `STOP_GRACE_SECONDS + KILL_AFTER_TERM_SECONDS`
    and raises KeyboardInterrupt; artifacts are written atomically, so none is left half-written.

    Raises:
        StepFailed: a step failed; the message is that step's own error and the log's path.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    root = os.path.abspath(os.path.join(runs_dir, f"{pipeline_func.name}-{stamp}"))
    os.makedirs(root, exist_ok=True)
    log_path = os.path.join(root, LOG_NAME)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=root,
        raise_on_error=True,
    )
    failed: list[str] = []

    def record(event: TaskEvent) -> None:
        if event.kind == "ended" and event.status != "SUCCESS":
            failed.append(event.task)
        if on_event:
            on_event(event)

    run_log = _RunLog(log_path, record, echo)
    try:
        with _stop_children_on_interrupt(), warnings.catch_warnings(), contextlib.redirect_stdout(run_log):
            warnings.simplefilter("ignore", category=RuntimeWarning)
            # kfp.local says that it ignores the steps' resource requests, for every task.
            warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
            pipeline_func(**parameters)
    except RuntimeError as err:
        task = failed[0] if failed else ""
        raise StepFailed(task or "?", run_log.error_of(task) if task else str(err), log_path) from err
    finally:
        run_log.close()
    return root


def list_artifacts(root: str) -> list[tuple[str, str, int]]:
    """(task, output path, size in bytes) for every output of every task, in the order they ran.

    An output is what KFP made for a task's declared output: a file, or a directory (a model)
    whose size is the sum of its files. A step's scratch space beside them is not listed.
    """
    found = []
    for directory, dirs, files in os.walk(root):
        if "executor_output.json" not in files:
            continue
        task = os.path.basename(directory)
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            if name == "executor_output.json" or name in SCRATCH:
                continue
            size = os.path.getsize(path) if os.path.isfile(path) else _tree_size(path)
            found.append((task, path, size))
        dirs[:] = []
    return sorted(found, key=lambda item: (os.path.getmtime(item[1]), item[1]))


def _tree_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


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
