"""Experiment tracking in MLflow: one MLflow run per pipeline run, which every step logs into.

The run is found by its `kfp.run_id` tag (the KFP run id, or any key the caller gives), so the
trainer, a retried trainer and the evaluate step all log into the same run. Tracking is on when
a tracking URI is given, or `MLFLOW_TRACKING_URI` is in the step's environment; the client is
`mlflow-skinny`.

A server that cannot be reached is a clear error before anything else happens, unless tracking
was declared optional: then a warning, and the step goes on without it (and stops tracking,
with one warning, if the server goes away later).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)

#: The tag that ties an MLflow run to its pipeline run.
RUN_KEY_TAG = "kfp.run_id"
#: MLflow's own tag for a nested run's parent, and ours for the child's key under it.
PARENT_TAG, CHILD_TAG = "mlflow.parentRunId", "mlworkloads.child"
DEFAULT_EXPERIMENT = "mlworkloads"
#: How long the reachability check waits for the server's /health.
PROBE_TIMEOUT_SECONDS = 10.0


class TrackingError(RuntimeError):
    """The MLflow tracking server cannot be reached or refused a call (tracking not optional)."""


@dataclasses.dataclass(frozen=True)
class TrackingSettings:
    """Where and how a step tracks.

    Attributes:
        tracking_uri: The MLflow tracking server; empty for `MLFLOW_TRACKING_URI`, and no
            tracking when that is unset too.
        experiment: The MLflow experiment the run belongs to (created when missing).
        run_key: The pipeline run's id: every step with the same key logs into one MLflow run.
        optional: Go on without tracking when the server cannot be reached.
        child: Log into a child run of the pipeline run's MLflow run, the one with this key
            (found or created): a sweep's trials run in parallel under one pipeline run, each
            with its own parameters, which one MLflow run cannot hold.
    """

    tracking_uri: str = ""
    experiment: str = DEFAULT_EXPERIMENT
    run_key: str = ""
    optional: bool = False
    child: str = ""

    @property
    def uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")


def config_entries(tracking_uri: str, run_key: str, optional: bool, child: str = "") -> dict[str, Any]:
    """A training component's tracking settings for its trainer config, the URI resolved in the
    step (from `MLFLOW_TRACKING_URI` when not given): training replicas do not see its environment."""
    return {
        "tracking_uri": tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", ""),
        "tracking_run_key": run_key,
        "tracking_optional": optional,
        "tracking_child": child,
    }


class TrackedRun:
    """The MLflow run of one pipeline run; every call is guarded as the settings say."""

    def __init__(self, client: Any, run_id: str, settings: TrackingSettings):
        self.client = client
        self.run_id = run_id
        self.settings = settings
        self.active = True

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _text(v)) for k, v in sorted(params.items())]
        self._call("log parameters", lambda: self.client.log_batch(self.run_id, params=items))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._log_points([(name, step or 0, value) for name, value in sorted(metrics.items())])

    def log_metric_steps(self, name: str, steps: list[tuple[int, float]]) -> None:
        """One metric's values at several steps (a curve's points), in one call."""
        self._log_points([(name, step, value) for step, value in steps])

    def _log_points(self, points: list[tuple[str, int, float]]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(name, float(value), now, step) for name, step, value in points]
        self._call("log metrics", lambda: self.client.log_batch(self.run_id, metrics=items))

    def log_dict(self, value: dict[str, Any], artifact_file: str) -> None:
        self._call("log an artifact", lambda: self.client.log_dict(self.run_id, value, artifact_file))

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._call("set a tag", lambda key=key, value=value: self.client.set_tag(self.run_id, key, value))

    def _call(self, what: str, call: Callable[[], Any]) -> None:
        if not self.active:
            return
        try:
            call()
        except Exception as err:  # noqa: BLE001 - MlflowException or a connection error
            if not self.settings.optional:
                raise TrackingError(
                    f"MLflow at {self.settings.uri} failed to {what} for run {self.run_id}: {err}"
                ) from err
            log.warning("MLflow at %s failed to %s (%s); going on without tracking", self.settings.uri, what, err)
            self.active = False


def start(settings: TrackingSettings, stage: str) -> TrackedRun | None:
    """The MLflow run of `settings.run_key` (created by the first step that asks), or None when
    tracking is off, or optional and the server cannot be reached.

    Raises:
        TrackingError: the server cannot be reached or refuses the run (tracking not optional).
    """
    uri = settings.uri
    if not uri:
        return None
    try:
        probe(uri)
        run_id = _find_or_create_run(uri, settings, stage)
    except Exception as err:  # noqa: BLE001 - httpx, MlflowException or a connection error
        message = f"MLflow tracking server {uri} cannot be used ({type(err).__name__}: {err})"
        if not settings.optional:
            raise TrackingError(f"{message}; set tracking to optional to train without it.") from err
        log.warning("%s; going on without tracking (optional)", message)
        return None
    from mlflow import MlflowClient

    log.info("tracking in MLflow run %s (%s, experiment %r)", run_id, uri, settings.experiment)
    return TrackedRun(MlflowClient(uri), run_id, settings)


def probe(uri: str) -> None:
    """Fails fast when an HTTP server is down: MLflow's client retries for minutes first."""
    if uri.startswith(("http://", "https://")):
        httpx.get(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_SECONDS).raise_for_status()


def _find_or_create_run(uri: str, settings: TrackingSettings, stage: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    experiment_id = experiment.experiment_id if experiment else _create_experiment(client, settings.experiment)
    run_id = _find_run(client, experiment_id, settings.run_key) or _create_run(client, experiment_id, settings, stage)
    if settings.child:
        return _find_or_create_child(client, experiment_id, run_id, settings.child, stage)
    return run_id


def _find_run(client: Any, experiment_id: str, run_key: str) -> str | None:
    """The oldest MLflow run with this key (see `_create_run`)."""
    if not run_key:
        return None
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{_quoted(run_key)}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    return found[0].info.run_id if found else None


def _create_run(client: Any, experiment_id: str, settings: TrackingSettings, stage: str) -> str:
    """A new run with the key; steps that start at once (a sweep's trials) may each create one,
    so each then takes the oldest and deletes its own if it is not that one."""
    tags = {RUN_KEY_TAG: settings.run_key} if settings.run_key else {}
    tags["mlworkloads.first_stage"] = stage
    created = client.create_run(experiment_id, tags=tags, run_name=settings.run_key or None).info.run_id
    first = _find_run(client, experiment_id, settings.run_key)
    if first is not None and first != created:
        client.delete_run(created)
        return first
    return created


def _find_or_create_child(client: Any, experiment_id: str, parent: str, child: str, stage: str) -> str:
    """The child run `child` of run `parent`: MLflow nests a run under the one its
    `mlflow.parentRunId` tag names. It carries no run key tag, so the parent stays the one found."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent}' and tags.`{CHILD_TAG}` = '{_quoted(child)}'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    tags = {PARENT_TAG: parent, CHILD_TAG: child, "mlworkloads.first_stage": stage}
    return client.create_run(experiment_id, tags=tags, run_name=child).info.run_id


def _create_experiment(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name)
    except MlflowException:  # created meanwhile by another step of the run
        return client.get_experiment_by_name(name).experiment_id


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float, bool)) else str(value)
