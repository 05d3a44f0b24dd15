import pathlib
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from mlworkloads import __version__
from mlworkloads.cli import app
from mlworkloads.images import ALL_IMAGES

runner = CliRunner()


def test_version_is_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"mlworkloads {__version__}"


EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
COMMANDS = ["compile", "catalog", "run", "demo", "serve", "upload", "submit", "schedule", "rbac", "images"]


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
        (["run", f"{EXAMPLES}/absent.py:main"], f"no pipeline file '{EXAMPLES}/absent.py'"),
        (
            ["run", f"{EXAMPLES}/cancer_screening/pipeline.py:examples_from"],
            "has no pipeline 'examples_from' (a @dsl.pipeline function); it has ['screening_pipeline']",
        ),
        (["run", f"{EXAMPLES}/cancer_screening/pipeline.py:screening_pipeline", "-p", "epochs=3"], "unknown parameter"),
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


def test_images_takes_the_registry_and_prints_build_and_push_for_all_three():
    result = runner.invoke(app, ["images", "--registry", "registry.example.com/ml", "--push"], env={"PATH": ""})
    # --push runs the commands: with no docker on PATH it fails on the first, after printing it.
    assert result.output.splitlines()[0] == (
        f"docker build -f docker/component.Dockerfile -t registry.example.com/ml/mlworkloads-python:{__version__} ."
    )
    printed = runner.invoke(app, ["images", "--registry", "registry.example.com/ml"]).output
    for kind in ("python", "trainer", "predictor"):
        assert f"-t registry.example.com/ml/mlworkloads-{kind}:{__version__}" in printed


def test_compile_with_a_registry_fixes_the_trainer_and_predictor_images_in_the_yaml(tmp_path):
    """The registry chosen at compile time must reach the replicas and the predictor pods, whose
    images the steps choose from their inputs: not only the steps' own base image."""
    result = runner.invoke(app, ["compile", "--out", str(tmp_path), "--registry", "registry.example.com/ml"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "pipelines" / "training_pipeline.yaml").read_text()
    for kind in ("python", "trainer", "predictor"):
        assert f"registry.example.com/ml/mlworkloads-{kind}:{__version__}" in text
    assert "ghcr.io/mlworkloads" not in text
    assert "ghcr.io/mlworkloads" not in (tmp_path / "components" / "train_pytorchjob.yaml").read_text()


@pytest.mark.e2e
def test_run_data_pipeline_shows_a_line_per_task_and_keeps_kfp_locals_output_in_the_log(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mlworkloads", "run", "data_pipeline", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Pipeline 'data_pipeline' succeeded" in out
    for task in ("ingest-table", "split-dataset", "fit-preprocessor"):
        assert f"  ok {task}  (" in out
    assert "ingested 327346 rows x 15 columns" in out and "split 327346 rows into train 261876" in out
    assert "executorInput" not in out and "--executor_input" not in out
    (log,) = tmp_path.glob("*/run.log")
    (shown,) = [line.split("full log: ", 1)[1] for line in out.splitlines() if "full log: " in line]
    assert pathlib.Path(shown).resolve() == log.resolve()
    text = log.read_text()
    assert "executor_input" in text and "ingested 327346 rows" in text


def _run(tmp_path, *params):
    command = [sys.executable, "-m", "mlworkloads", "run", "data_pipeline", "--runs-dir", str(tmp_path)]
    for param in params:
        command += ["-p", param]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_run_reports_a_failing_step_with_its_own_error_and_exit_code_1(tmp_path):
    result = _run(tmp_path, "max_rows=2000", "validation_fraction=0.6", "test_fraction=0.5")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-4:]
    assert "pipeline 'data_pipeline' failed: step 'split-dataset' failed" in result.stderr
    assert any("validation_fraction + test_fraction = 1.1 leaves no rows for train" in line for line in last), last
    assert last[-1].strip().startswith("full log: ")


@pytest.mark.e2e
def test_bad_input_fails_the_first_attempt_without_a_task_retry(tmp_path):
    """A wrong label column is not transient: the step runs once and its message, which names
    the column and lists the table's, is the CLI's last word (not `Inner task failed`)."""
    result = _run(tmp_path, "label_column=no_such_column", "max_rows=1000")
    assert result.returncode == 1
    (log,) = tmp_path.glob("*/run.log")
    assert log.read_text().count("Executing task 'ingest-table'") == 1
    assert "'no_such_column'" in result.stderr and "dep_delay" in result.stderr
    assert "Inner task failed" not in result.stderr


def test_rbac_binds_exactly_the_given_service_account_in_its_own_namespace():
    result = runner.invoke(
        app, ["rbac", "--namespace", "team-a", "--service-account", "runner", "--service-account-namespace", "kubeflow"]
    )
    assert result.exit_code == 0
    documents = list(yaml.safe_load_all(result.output))
    assert {d["metadata"]["name"] for d in documents if d["kind"] == "Role"} == {
        "mlworkloads-training",
        "mlworkloads-serving",
    }
    assert {d["metadata"]["namespace"] for d in documents} == {"team-a"}
    for binding in (d for d in documents if d["kind"] == "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "runner", "namespace": "kubeflow"}]


def test_rbac_defaults_the_subjects_namespace_to_the_roles_namespace():
    documents = list(yaml.safe_load_all(runner.invoke(app, ["rbac", "-n", "team-b"]).output))
    (subject,) = {(s["name"], s["namespace"]) for d in documents if d["kind"] == "RoleBinding" for s in d["subjects"]}
    assert subject == ("pipeline-runner", "team-b")


@pytest.mark.e2e
def test_serve_answers_v1_and_grpc_on_the_given_ports_until_interrupted(sample_model, tmp_path):
    import os
    import signal

    import httpx

    from mlworkloads.serving.local_server import free_port, stop_process_tree, wait_ready

    port, grpc_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        command = [sys.executable, "-m", "mlworkloads", "serve", sample_model, "--name", "flights"]
        command += ["--port", str(port), "--grpc-port", str(grpc_port)]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, "flights", process, 60, str(log))
        from mlworkloads.training.export import load

        columns = load(sample_model).preprocessor.feature_columns
        instance = {name: None for name in columns}  # all missing: imputed, still a prediction
        response = httpx.post(f"{base}/v1/models/flights:predict", json={"instances": [instance]}, timeout=10)
        assert response.status_code == 200 and len(response.json()["predictions"]) == 1
        # The gRPC API listens where it was told to (KServe's server, V2).
        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            assert GRPCInferenceServiceStub(channel).ModelReady(pb.ModelReadyRequest(name="flights"), timeout=10).ready
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)  # raises if Ctrl-C does not stop the server
        # The predictor's own lines reach the log, in KServe's format (they went nowhere before).
        loaded = [line for line in log.read_text().splitlines() if "mlworkloads.serving.predictor INFO" in line]
        assert loaded and "model 'flights' loaded from" in loaded[0], log.read_text()[-2000:]
    finally:
        stop_process_tree(process)
