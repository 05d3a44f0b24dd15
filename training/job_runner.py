"""Running one training job on a cluster, whatever its kind: a PyTorchJob or a TrainJob.

Create or adopt the run-scoped job, stream its leader's log into the step, keep every node's
log tail while it runs, wait for it to finish, name the failing node with its log tail and the
scheduler's reason when it never started, and delete it on every exit path. What differs
between the kinds (the API calls, the condition that means done, the pods' labels) is a
`JobKind` (`pytorchjob.py`, `trainjob.py`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch

from mlworkloads.kube import RUN_LABEL, api_status, forbidden, label_value
from mlworkloads.training.errors import JobFailed
from mlworkloads.training.logs import digest

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 30
# Lines kept per node while the job runs: enough for a crash's traceback and torchrun's report.
KEPT_LOG_LINES = 500


def permission_hint(err: BaseException, verb: str, resource: str, namespace: str) -> BaseException:
    """Turns a 403 into an error that says which permission is missing."""
    hint = (
        f"Apply the Role and RoleBinding of training/rbac.yaml to that namespace: "
        f"`mlworkloads rbac -n {namespace} --service-account <sa> | kubectl apply -f -`."
    )
    return forbidden(err, verb, resource, namespace, hint) or err


class JobKind(abc.ABC):
    """One kind of training job as the runner drives it."""

    #: The kind's name, as the API and the messages spell it.
    kind: str
    #: `<plural>.<group>`, as RBAC names it.
    resource: str
    #: The container whose log is the training's.
    container: str
    #: The condition type that means the job is done.
    succeeded: str
    failed: str = "Failed"

    def __init__(self, core: k8s.CoreV1Api):
        self.core = core

    @abc.abstractmethod
    def create(self, manifest: Any, namespace: str) -> None:
        """Creates the job; raises what the client raises (a 409 when it exists)."""

    @abc.abstractmethod
    def conditions(self, name: str, namespace: str) -> list[dict[str, str]]:
        """The job's status conditions as `{"type", "status", "reason", "message"}`."""

    @abc.abstractmethod
    def delete(self, name: str, namespace: str) -> None:
        """Deletes the job and, in the foreground or background, its pods."""

    @abc.abstractmethod
    def names(self, namespace: str, label_selector: str) -> list[str]:
        """The names of the jobs with these labels."""

    @abc.abstractmethod
    def pod_selector(self, name: str, leader: bool = False) -> str:
        """The label selector of the job's pods (only the rank-0 node's when `leader`)."""

    def pods(self, name: str, namespace: str, leader: bool = False) -> list[k8s.V1Pod]:
        selector = self.pod_selector(name, leader)
        return self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=10).items


class JobRunner:
    """Creates (or adopts), waits for, reports on and deletes one job of a `JobKind`."""

    def __init__(self, kind: JobKind, namespace: str, echo: Callable[[str], None] = print):
        self.kind = kind
        self.namespace = namespace
        self.echo = echo
        # pod name -> the last log tail read while the job ran (see _keep_log_tails).
        self.log_tails: dict[str, str] = {}

    def create_or_adopt(self, manifest: Any, name: str) -> bool:
        """Creates the job; returns False when a job of that name exists already (a retried step)."""
        try:
            self.kind.create(manifest, self.namespace)
            self.echo(f"created {self.kind.kind} {self.namespace}/{name}")
            return True
        except Exception as err:  # noqa: BLE001 - each client raises its own type; the status tells
            if api_status(err) == 409:
                self.echo(f"adopting the existing {self.kind.kind} {self.namespace}/{name} (step retried)")
                return False
            raise permission_hint(err, "create", self.kind.resource, self.namespace) from err

    def run(self, manifest: Any, name: str, wait_timeout: int, poll_interval: float = 5, keep_job: bool = False):
        """Runs the job until it succeeds, streaming the leader's log; deletes it on every exit
        path (after success too, unless `keep_job`).

        Raises:
            JobFailed: the job failed (with conditions, events and every node's log tail) or did
                not finish within `wait_timeout` seconds.
        """
        self.create_or_adopt(manifest, name)
        stop = threading.Event()
        streamer = threading.Thread(target=self._stream_leader_log, args=(name, stop), daemon=True)
        keeper = threading.Thread(target=self._keep_log_tails, args=(name, stop, poll_interval), daemon=True)
        streamer.start()
        keeper.start()
        succeeded = False
        try:
            self._wait(name, wait_timeout, poll_interval)
            succeeded = True
        finally:
            stop.set()
            streamer.join(timeout=10)
            keeper.join(timeout=10)
            if not (succeeded and keep_job):
                self.delete(name)

    def _wait(self, name: str, wait_timeout: float, poll_interval: float) -> None:
        deadline = time.monotonic() + wait_timeout
        while True:
            try:
                conditions = self.kind.conditions(name, self.namespace)
            except Exception as err:  # noqa: BLE001 - a 403 is the caller's to fix; else the API blinked
                hint = permission_hint(err, "get", self.kind.resource, self.namespace)
                if hint is not err:
                    raise hint from err
                if api_status(err) == 404:
                    raise JobFailed(f"{self.kind.kind} {self.namespace}/{name} was deleted while it ran.") from err
                log.debug("reading %s %s: %s", self.kind.kind, name, err)
                conditions = []
            true = {c["type"] for c in conditions if c.get("status") == "True"}
            if self.kind.succeeded in true:
                return
            if self.kind.failed in true:
                raise JobFailed(f"{self.kind.kind} {self.namespace}/{name} failed.\n{self.diagnosis(name)}")
            if time.monotonic() >= deadline:
                raise JobFailed(
                    f"{self.kind.kind} {self.namespace}/{name} did not succeed within {wait_timeout:g} s; it is "
                    f"deleted.\n{self.diagnosis(name)}"
                )
            time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))

    def delete(self, name: str) -> None:
        try:
            self.kind.delete(name, self.namespace)
            self.echo(f"deleted {self.kind.kind} {self.namespace}/{name}")
        except Exception as err:  # noqa: BLE001 - as in create_or_adopt
            if api_status(err) == 404:
                return
            raise permission_hint(err, "delete", self.kind.resource, self.namespace) from err

    def diagnosis(self, name: str) -> str:
        """Conditions, events (the scheduler's reasons among them) and every node's log tail."""
        parts = []
        with contextlib.suppress(Exception):
            for c in self.kind.conditions(name, self.namespace):
                parts.append(
                    f"condition {c['type']}={c['status']}: {c.get('reason') or ''} {c.get('message') or ''}".rstrip()
                )
        with contextlib.suppress(Exception):
            for event in self.kind.core.list_namespaced_event(self.namespace).items:
                involved = event.involved_object.name or ""
                if involved == name or involved.startswith(f"{name}-"):
                    parts.append(f"event {involved}: {event.reason}: {event.message}")
        logs = dict(self.log_tails)
        with contextlib.suppress(Exception):
            for pod in self.kind.pods(name, self.namespace):
                with contextlib.suppress(Exception):
                    logs[pod.metadata.name] = self.kind.core.read_namespaced_pod_log(
                        pod.metadata.name, self.namespace, container=self.kind.container, tail_lines=KEPT_LOG_LINES
                    )
        for pod, text in sorted(logs.items()):
            parts.append(f"--- log of {pod} ---\n" + digest(text.splitlines(), LOG_TAIL_LINES).rstrip())
        return "\n".join(parts)

    def _keep_log_tails(self, name: str, stop: threading.Event, interval: float) -> None:
        """Reads every node's log tail while the job runs.

        With restartPolicy OnFailure a crashing replica's pod stays Running, so when the backoff
        limit is reached the operator (cleanPodPolicy Running) deletes it, and its log with it, in
        the same step that marks the job Failed: read afterwards, there is nothing to read. For a
        restarted container the tail of the last crash (`previous`) is what explains the failure.
        """
        while not stop.wait(interval):
            try:
                pods = self.kind.pods(name, self.namespace)
            except Exception as err:  # noqa: BLE001 - no pods yet, or the API is briefly away
                log.debug("no pods of %s: %s", name, err)
                continue
            for pod in pods:
                statuses = [s for s in (pod.status.container_statuses or []) if s.name == self.kind.container]
                if not statuses or (statuses[0].restart_count == 0 and statuses[0].state.waiting):
                    continue  # not started: no log yet
                with contextlib.suppress(Exception):
                    self.log_tails[pod.metadata.name] = self.kind.core.read_namespaced_pod_log(
                        pod.metadata.name,
                        self.namespace,
                        container=self.kind.container,
                        tail_lines=KEPT_LOG_LINES,
                        previous=statuses[0].restart_count > 0,
                    )

    def _stream_leader_log(self, name: str, stop: threading.Event) -> None:
        """Follows the rank-0 node's log into ours, waiting while its pod is Pending."""
        while not stop.is_set():
            try:
                pods = self.kind.pods(name, self.namespace, leader=True)
            except Exception as err:  # noqa: BLE001 - the job may not have pods yet
                log.debug("no pods of %s yet: %s", name, err)
                pods = []
            running = [p for p in pods if p.status and p.status.phase not in (None, "Pending")]
            if not running:
                stop.wait(1.0)
                continue
            pod = running[0].metadata.name
            try:
                for line in watch.Watch().stream(
                    self.kind.core.read_namespaced_pod_log,
                    name=pod,
                    namespace=self.namespace,
                    container=self.kind.container,
                ):
                    self.echo(f"[{pod}] {line}")
                    if stop.is_set():
                        return
                return
            except Exception as err:  # noqa: BLE001 - pod restarted or went away; try again
                log.debug("log stream of %s ended: %s", name, err)
                stop.wait(1.0)


def delete_run_jobs(kind: JobKind, namespace: str, run_id: str, echo: Callable[[str], None] = print) -> list[str]:
    """Deletes every job of this kind a pipeline run left behind (they carry the run's label)."""
    selector = f"{RUN_LABEL}={label_value(run_id)}"
    try:
        names = kind.names(namespace, selector)
    except Exception as err:  # noqa: BLE001 - ApiException or a connection error
        raise permission_hint(err, "list", kind.resource, namespace) from err
    runner = JobRunner(kind, namespace, echo=echo)
    for name in names:
        runner.delete(name)
    return names
