"""The PyTorchJob backend: run the job `pytorchjob_spec.py` builds, report on it, clean it up.

Create or adopt the run-scoped job, stream its replicas' logs into the step, wait for it, name
the failing replica with its log tail, and delete it on every exit path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from kubeflow.training import TrainingClient, models
from kubeflow.training.constants import constants as kf
from kubernetes import watch

from mlworkloads.kube import (
    RUN_LABEL,
    api_status,
    forbidden,
    label_value,
)
from mlworkloads.training.logs import digest

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 30
# Lines kept per replica while the job runs: enough for a crash's traceback and torchrun's report.
KEPT_LOG_LINES = 500


class JobFailed(RuntimeError):
    """The PyTorchJob failed or timed out; the message has its conditions, events and log tails."""


def permission_hint(err: BaseException, verb: str, resource: str, namespace: str) -> BaseException:
    """Turns a 403 into an error that says which permission is missing."""
    hint = (
        f"Apply the Role and RoleBinding of training/rbac.yaml to that namespace: "
        f"`mlworkloads rbac -n {namespace} --service-account <sa> | kubectl apply -f -`."
    )
    return forbidden(err, verb, resource, namespace, hint) or err


class PyTorchJobRunner:
    """Creates (or adopts), waits for, reports on and deletes one PyTorchJob."""

    def __init__(self, client: TrainingClient, namespace: str, echo: Callable[[str], None] = print):
        self.client = client
        self.namespace = namespace
        self.echo = echo
        # pod name -> the last log tail read while the job ran (see _keep_log_tails).
        self.log_tails: dict[str, str] = {}

    def create_or_adopt(self, job: models.KubeflowOrgV1PyTorchJob) -> bool:
        """Creates the job; returns False when a job of that name exists already (a retried step)."""
        name = job.metadata.name
        try:
            self.client.create_job(job=job, namespace=self.namespace)
            self.echo(f"created PyTorchJob {self.namespace}/{name}")
            return True
        except RuntimeError as err:
            if api_status(err) == 409:
                self.echo(f"adopting the existing PyTorchJob {self.namespace}/{name} (step retried)")
                return False
            raise permission_hint(err, "create", "pytorchjobs.kubeflow.org", self.namespace) from err

    def run(
        self,
        job: models.KubeflowOrgV1PyTorchJob,
        wait_timeout: int,
        poll_interval: int = 5,
        keep_job: bool = False,
    ) -> models.KubeflowOrgV1PyTorchJob:
        """Runs the job to Succeeded, streaming the master's log; deletes it on every exit path
        (after success too, unless `keep_job`).

        Raises:
            JobFailed: the job failed (with conditions, events and every replica's log tail) or
                did not finish within `wait_timeout` seconds.
        """
        name = job.metadata.name
        self.create_or_adopt(job)
        stop = threading.Event()
        streamer = threading.Thread(target=self._stream_master_log, args=(name, stop), daemon=True)
        keeper = threading.Thread(target=self._keep_log_tails, args=(name, stop, poll_interval), daemon=True)
        streamer.start()
        keeper.start()
        succeeded = False
        try:
            try:
                finished = self.client.wait_for_job_conditions(
                    name=name,
                    namespace=self.namespace,
                    expected_conditions={kf.JOB_CONDITION_SUCCEEDED},
                    wait_timeout=wait_timeout,
                    polling_interval=poll_interval,
                    timeout=30,
                )
            except TimeoutError as err:
                raise JobFailed(
                    f"PyTorchJob {self.namespace}/{name} did not succeed within {wait_timeout} s; it is "
                    f"deleted.\n{self.diagnosis(name)}"
                ) from err
            except RuntimeError as err:
                hint = permission_hint(err, "get", "pytorchjobs.kubeflow.org", self.namespace)
                if hint is not err:
                    raise hint from err
                raise JobFailed(f"PyTorchJob {self.namespace}/{name} failed.\n{self.diagnosis(name)}") from err
            succeeded = True
            return finished
        finally:
            stop.set()
            streamer.join(timeout=10)
            keeper.join(timeout=10)
            if not (succeeded and keep_job):
                self.delete(name)

    def delete(self, name: str) -> None:
        try:
            self.client.delete_job(name=name, namespace=self.namespace)
            self.echo(f"deleted PyTorchJob {self.namespace}/{name}")
        except RuntimeError as err:
            if api_status(err) == 404:
                return
            raise permission_hint(err, "delete", "pytorchjobs.kubeflow.org", self.namespace) from err

    def diagnosis(self, name: str) -> str:
        """Conditions, events and the last lines of every replica's log, for an error message."""
        parts = []
        with contextlib.suppress(Exception):
            job = self.client.get_job(name=name, namespace=self.namespace)
            for c in (job.status.conditions or []) if job.status else []:
                parts.append(f"condition {c.type}={c.status}: {c.reason or ''} {c.message or ''}".rstrip())
        with contextlib.suppress(Exception):
            events = self.client.core_api.list_namespaced_event(self.namespace)
            for event in events.items:
                involved = event.involved_object.name or ""
                if involved == name or involved.startswith(f"{name}-"):
                    parts.append(f"event {involved}: {event.reason}: {event.message}")
        logs = dict(self.log_tails)
        with contextlib.suppress(Exception):
            logs.update(self.client.get_job_logs(name=name, namespace=self.namespace, is_master=False)[0])
        for pod, text in sorted(logs.items()):
            parts.append(f"--- log of {pod} ---\n" + digest(text.splitlines(), LOG_TAIL_LINES).rstrip())
        return "\n".join(parts)

    def _keep_log_tails(self, name: str, stop: threading.Event, interval: float) -> None:
        """Reads every replica's log tail while the job runs.

        With restartPolicy OnFailure a crashing replica's pod stays Running, so when the backoff
        limit is reached the operator (cleanPodPolicy Running) deletes it, and its log with it, in
        the same step that marks the job Failed: read afterwards, there is nothing to read. For a
        restarted container the tail of the last crash (`previous`) is what explains the failure.
        """
        core = self.client.core_api
        while not stop.wait(interval):
            try:
                pods = self.client.get_job_pods(name=name, namespace=self.namespace, timeout=10)
            except Exception as err:  # noqa: BLE001 - no pods yet, or the API is briefly away
                log.debug("no pods of %s: %s", name, err)
                continue
            for pod in pods:
                statuses = [s for s in (pod.status.container_statuses or []) if s.name == kf.PYTORCHJOB_CONTAINER]
                if not statuses or (statuses[0].restart_count == 0 and statuses[0].state.waiting):
                    continue  # not started: no log yet
                with contextlib.suppress(Exception):
                    self.log_tails[pod.metadata.name] = core.read_namespaced_pod_log(
                        pod.metadata.name,
                        self.namespace,
                        container=kf.PYTORCHJOB_CONTAINER,
                        tail_lines=KEPT_LOG_LINES,
                        previous=statuses[0].restart_count > 0,
                    )

    def _stream_master_log(self, name: str, stop: threading.Event) -> None:
        """Follows the master's log into ours, waiting while its pod is Pending."""
        core = self.client.core_api
        while not stop.is_set():
            try:
                pods = self.client.get_job_pods(name=name, namespace=self.namespace, is_master=True, timeout=10)
            except Exception as err:  # noqa: BLE001 - the job may not have pods yet
                log.debug("no pods of %s yet: %s", name, err)
                pods = []
            running = [p for p in pods if p.status and p.status.phase not in (None, kf.POD_PHASE_PENDING)]
            if not running:
                stop.wait(1.0)
                continue
            try:
                for line in watch.Watch().stream(
                    core.read_namespaced_pod_log,
                    name=running[0].metadata.name,
                    namespace=self.namespace,
                    container=kf.PYTORCHJOB_CONTAINER,
                ):
                    self.echo(f"[{running[0].metadata.name}] {line}")
                    if stop.is_set():
                        return
                return
            except Exception as err:  # noqa: BLE001 - pod restarted or went away; try again
                log.debug("log stream of %s ended: %s", name, err)
                stop.wait(1.0)


def delete_run_jobs(
    client: TrainingClient, namespace: str, run_id: str, echo: Callable[[str], None] = print
) -> list[str]:
    """Deletes every PyTorchJob a pipeline run left behind (its jobs carry the run's label)."""
    selector = f"{RUN_LABEL}={label_value(run_id)}"
    try:
        found = client.custom_api.list_namespaced_custom_object(
            kf.GROUP, kf.VERSION, namespace, kf.JOB_PARAMETERS[kf.PYTORCHJOB_KIND]["plural"], label_selector=selector
        )
    except Exception as err:  # noqa: BLE001 - ApiException or a connection error
        raise permission_hint(err, "list", "pytorchjobs.kubeflow.org", namespace) from err
    deleted = []
    runner = PyTorchJobRunner(client, namespace, echo=echo)
    for item in found.get("items", []):
        runner.delete(item["metadata"]["name"])
        deleted.append(item["metadata"]["name"])
    return deleted
