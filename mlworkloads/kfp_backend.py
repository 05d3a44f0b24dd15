"""Uploading, running and scheduling the compiled pipelines on a Kubeflow Pipelines backend.

The host and credentials are resolved the way `kfp` resolves them (`--host` or
`KF_PIPELINES_ENDPOINT`, IAP / OAuth client ids from the environment, the in-cluster service
account), since `kfp.Client` does the resolving.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from typing import Any

import yaml

from mlworkloads._version import __version__
from mlworkloads.errors import SubmitError


def connect(host: str | None = None, namespace: str | None = None, existing_token: str | None = None):
    import kfp

    return kfp.Client(host=host or None, namespace=namespace or "kubeflow", existing_token=existing_token or None)


def compile_pipeline(pipeline_func, out_dir: str, caching: bool | None = None) -> str:
    """Compiles to `out_dir/<name>.yaml`; `caching` forces caching on or off in every task of every DAG.

    kfp's own `enable_caching` is dropped when a run or recurring run is created from a pipeline
    id (kubeflow/pipelines#14253) and reaches only the root DAG's tasks, so the override is
    written into the uploaded spec itself, sub-DAGs (ExitHandler, If, ParallelFor) included.
    """
    from kfp import compiler

    path = os.path.join(out_dir, f"{pipeline_func.name}.yaml")
    compiler.Compiler().compile(pipeline_func=pipeline_func, package_path=path)
    if caching is not None:
        with open(path, encoding="utf-8") as f:
            documents = list(yaml.safe_load_all(f))
        set_caching(documents[0], caching)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump_all(documents, f, sort_keys=True)
    return path


def set_caching(pipeline_spec: dict[str, Any], enabled: bool) -> int:
    """Sets `cachingOptions.enableCache` on every task of every DAG; returns how many tasks."""
    dags = [pipeline_spec["root"]["dag"]] + [
        c["dag"] for c in pipeline_spec.get("components", {}).values() if "dag" in c
    ]
    count = 0
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task.setdefault("cachingOptions", {})["enableCache"] = enabled
            count += 1
    return count


def upload(
    client, package_path: str, pipeline_name: str, description: str = "", version_name: str | None = None
) -> tuple[str, str]:
    """Uploads as a new pipeline, or as a new version of the existing one; returns (pipeline id, version id)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    version_name = version_name or f"{pipeline_name}-{__version__}-{stamp}"
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(package_path, pipeline_name=pipeline_name, description=description)
        pipeline_id = pipeline.pipeline_id
        versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
        return pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    version = client.upload_pipeline_version(package_path, pipeline_version_name=version_name, pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


def submit(
    client,
    pipeline_func,
    parameters: dict[str, Any],
    experiment: str,
    run_name: str | None,
    pipeline_name: str | None = None,
) -> Any:
    """Uploads the pipeline (or a new version) and creates a run of that version."""
    name = pipeline_name or pipeline_func.name
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_id, version_id = upload(client, compile_pipeline(pipeline_func, tmp), name)
    experiment_id = client.create_experiment(experiment).experiment_id
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return client.run_pipeline(
        experiment_id=experiment_id,
        job_name=run_name or f"{name}-{stamp}",
        pipeline_id=pipeline_id,
        version_id=version_id,
        params=parameters,
    )


def wait(client, run_id: str, timeout_seconds: int) -> str:
    """Follows a run to its end; returns its final state, raising SubmitError unless SUCCEEDED."""
    run = client.wait_for_run_completion(run_id, timeout=timeout_seconds)
    state = str(run.state)
    if state != "SUCCEEDED":
        raise SubmitError(f"run {run_id} ended {state}: {getattr(run, 'error', None) or ''}".rstrip(": "))
    return state


def cron_expression(cron: str) -> str:
    """KFP's schedules take 6 fields (seconds first); accept the usual 5-field crontab too."""
    fields = cron.split()
    if len(fields) == 5:
        return "0 " + cron.strip()
    if len(fields) == 6:
        return cron.strip()
    raise SubmitError(f"--cron {cron!r}: expected 5 crontab fields ('0 2 * * *') or 6 with seconds first.")


def schedule(
    client,
    pipeline_func,
    parameters: dict[str, Any],
    cron: str,
    experiment: str,
    name: str | None,
    max_concurrency: int = 1,
    no_catchup: bool = True,
    caching: bool | None = None,
    pipeline_name: str | None = None,
) -> Any:
    """Creates a recurring run of a freshly uploaded version (with caching forced as asked)."""
    expression = cron_expression(cron)
    if max_concurrency < 1:
        raise SubmitError(f"--max-concurrency={max_concurrency}: expected at least 1.")
    pipeline = pipeline_name or pipeline_func.name
    with tempfile.TemporaryDirectory() as tmp:
        suffix = "" if caching is None else ("-cache-on" if caching else "-cache-off")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        pipeline_id, version_id = upload(
            client,
            compile_pipeline(pipeline_func, tmp, caching),
            pipeline,
            version_name=f"{pipeline}-{__version__}-{stamp}{suffix}",
        )
    experiment_id = client.create_experiment(experiment).experiment_id
    return client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=name or f"{pipeline}-schedule",
        cron_expression=expression,
        max_concurrency=max_concurrency,
        no_catchup=no_catchup,
        pipeline_id=pipeline_id,
        version_id=version_id,
        params=parameters,
        enable_caching=caching,
    )
