import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mlworkloads import __version__
from mlworkloads.cli import app
from mlworkloads.images import ALL_IMAGES

runner = CliRunner()


def test_version_is_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"mlworkloads {__version__}"


COMMANDS = ["compile", "run", "demo", "serve", "upload", "submit", "schedule", "rbac", "images"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "unknown pipeline 'nope'"),
        (["run", "data_pipeline", "-p", "max_rows=many"], "parameter 'max_rows' is Integer; got 'many'"),
        (["run", "data_pipeline", "-p", "colour=blue"], "unknown parameter 'colour'"),
        (["run", "data_pipeline", "-p", "drop_columns=[oops"], "parameter 'drop_columns' takes JSON"),
        (["run", "data_pipeline", "-p", "max_rows"], "expected key=value"),
    ],
)
def test_run_refuses_bad_parameters_before_running_anything(args, message, tmp_path):
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output
    assert not list(tmp_path.iterdir())


def test_images_are_tagged_with_the_version_never_latest():
    result = runner.invoke(app, ["images"])
    for image in ALL_IMAGES.values():
        assert image.endswith(f":{__version__}") and image in result.output


@pytest.mark.e2e
def test_run_data_pipeline_on_the_flights_table_prints_artifacts_and_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mlworkloads", "run", "data_pipeline", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pipeline 'data_pipeline' succeeded" in result.stdout
    for output in ("ingest-table", "split-dataset/train", "fit-preprocessor/preprocessor", "test_features"):
        assert output in result.stdout
    assert "**327,346 rows**, **15 columns**" in result.stdout


@pytest.mark.e2e
def test_run_reports_a_failing_step_with_exit_code_1(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlworkloads",
            "run",
            "data_pipeline",
            "-p",
            "max_rows=2000",
            "-p",
            "validation_fraction=0.6",
            "-p",
            "test_fraction=0.5",
            "--runs-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "validation_fraction + test_fraction = 1.1 leaves no rows for train" in result.stdout
    assert "pipeline 'data_pipeline' failed" in result.stderr


def test_rbac_prints_the_training_and_serving_roles():
    result = runner.invoke(app, ["rbac"])
    assert result.exit_code == 0
    assert "name: mlworkloads-training" in result.output and "name: mlworkloads-serving" in result.output


@pytest.mark.e2e
def test_serve_answers_v1_on_the_given_port_until_interrupted(sample_model, tmp_path):
    import os
    import signal

    import httpx
    from mlworkloads.serving.deploy import _wait_ready, free_port, stop_process_tree

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        command = [sys.executable, "-m", "mlworkloads", "serve", sample_model, "--name", "flights", "--port", str(port)]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, "flights", process, 60, str(log))
        from mlworkloads.training.export import load

        columns = load(sample_model).preprocessor.feature_columns
        instance = {name: None for name in columns}  # all missing: imputed, still a prediction
        response = httpx.post(f"{base}/v1/models/flights:predict", json={"instances": [instance]}, timeout=10)
        assert response.status_code == 200 and len(response.json()["predictions"]) == 1
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)  # raises if Ctrl-C does not stop the server
    finally:
        stop_process_tree(process)
