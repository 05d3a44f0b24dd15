"""The MLflow model registry: a model that passed the gate as a new version, with its lineage;
the `champion` alias moved to the version the deployer promoted; the champion read back.

A version's files are the model directory itself, logged as the `model` artifact of the
pipeline run's MLflow run (`tracking.py`), so the registry holds what was served and any
platform with the registry can fetch it without KFP's artifact store.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from mlworkloads.training.tracking import RUN_KEY_TAG, TrackingError, TrackingSettings, probe, start

log = logging.getLogger(__name__)

CHAMPION = "champion"
#: Where a version's model directory lives in its MLflow run.
MODEL_ARTIFACT = "model"


def register(
    settings: TrackingSettings, name: str, model_dir: str, lineage: dict[str, Any], description: str = ""
) -> str:
    """Logs `model_dir` into the pipeline run's MLflow run and registers it as a new version of
    `name` (created when missing), tagged with `lineage`; returns the version.

    Raises:
        TrackingError: no tracking server, or one that cannot be reached or refuses the call.
    """
    from mlflow.exceptions import MlflowException

    tracked = start(settings, "register")
    if tracked is None:
        raise TrackingError(
            "registering a model needs an MLflow tracking server: give tracking_uri or set MLFLOW_TRACKING_URI."
        )
    client = tracked.client
    try:
        client.log_artifacts(tracked.run_id, model_dir, MODEL_ARTIFACT)
        try:
            client.create_registered_model(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{client.get_run(tracked.run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
        tags = {k: _tag(v) for k, v in lineage.items()}
        version = client.create_model_version(name, source, run_id=tracked.run_id, tags=tags, description=description)
    except Exception as err:  # noqa: BLE001 - MlflowException or a connection error
        raise TrackingError(f"MLflow at {settings.uri} could not register {name!r}: {err}") from err
    log.info("registered %s version %s (MLflow run %s)", name, version.version, tracked.run_id)
    return str(version.version)


def version_lineage(model_dir: str, run_key: str, **uris: str) -> dict[str, Any]:
    """A version's lineage: the pipeline run (`kfp.run_id`), the given URIs (empty ones left out),
    the model's family and the validation metrics its `model.json` records."""
    from mlworkloads.training.export import load

    loaded = load(model_dir)  # a directory that is not a model is refused here, by name
    metrics = {k: v for k, v in (loaded.config.get("metrics") or {}).items() if isinstance(v, (int, float))}
    lineage = {RUN_KEY_TAG: run_key, **{k: v for k, v in uris.items() if v}}
    return {**lineage, "model_family": loaded.family, **metrics}


def set_alias(settings: TrackingSettings, name: str, version: str, alias: str = CHAMPION) -> None:
    """Points `alias` of `name` at `version` (moving it from the version it named before)."""
    client = _client(settings)
    try:
        client.set_registered_model_alias(name, alias, version)
    except Exception as err:  # noqa: BLE001
        raise TrackingError(
            f"MLflow at {settings.uri} could not set {name}@{alias} to version {version}: {err}"
        ) from err
    log.info("%s@%s is version %s", name, alias, version)


def download(settings: TrackingSettings, reference: str, destination: str | None = None) -> str:
    """The model directory of `reference` ("name@alias" or "name/version"), downloaded; its path.

    Raises:
        TrackingError: the reference is malformed or names no version.
    """
    client = _client(settings)
    name, alias = reference.split("@", 1) if "@" in reference else (reference, "")
    try:
        if alias:
            version = client.get_model_version_by_alias(name, alias)
        elif "/" in reference:
            name, number = reference.rsplit("/", 1)
            version = client.get_model_version(name, number)
        else:
            raise TrackingError(f"{reference!r}: expected 'model@alias' or 'model/version'.")
        path = client.download_artifacts(version.run_id, MODEL_ARTIFACT, destination or tempfile.mkdtemp())
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001
        raise TrackingError(f"MLflow at {settings.uri} has no model {reference!r}: {err}") from err
    log.info("%s is version %s of %s, downloaded to %s", reference, version.version, name, path)
    return path


def _client(settings: TrackingSettings):
    from mlflow import MlflowClient

    if not settings.uri:
        raise TrackingError(
            "the model registry needs an MLflow tracking server: give tracking_uri or set MLFLOW_TRACKING_URI."
        )
    try:
        probe(settings.uri)
    except Exception as err:  # noqa: BLE001 - httpx's errors
        message = f"MLflow tracking server {settings.uri} cannot be used ({type(err).__name__}: {err})"
        raise TrackingError(message) from err
    return MlflowClient(settings.uri)


def _tag(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)
