"""training_pipeline end to end with kfp.local on a sample of the flights table."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from mlworkloads.local_run import find_output, run_locally
from mlworkloads.pipelines import PIPELINES

SMALL = {
    "max_rows": 30000,
    "epochs": 2,
    "hidden_sizes": [32, 16],
    "backend": "local",
    "deploy_backend": "local",
    "nproc_per_node": 2,
}


def _ran(root, task):
    try:
        find_output(root, task, "executor_output.json")
        return True
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `mlworkloads demo` run of training_pipeline (SMALL, locally), shared by the tests that
    read its output and the ones that read its artifacts: the pipeline runs once, not twice."""
    runs = tmp_path_factory.mktemp("demo-runs")
    parameters = [f"{key}={json.dumps(value) if isinstance(value, list) else value}" for key, value in SMALL.items()]
    result = subprocess.run(
        [sys.executable, "-m", "mlworkloads", "demo", "--runs-dir", str(runs)]
        + [arg for parameter in parameters for arg in ("-p", parameter)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (root,) = [str(p) for p in runs.iterdir() if p.is_dir()]
    return result, root


@pytest.mark.e2e
def test_training_pipeline_trains_evaluates_and_deploys_locally(demo):
    _, root = demo
    status = json.loads(pathlib.Path(find_output(root, "deploy-inferenceservice", "status")).read_text())
    assert status["ready"] is True and status["smoke_test"]["max_difference"] < 1e-4
    manifest = json.loads(pathlib.Path(find_output(root, "deploy-inferenceservice", "manifest")).read_text())
    assert manifest["kind"] == "InferenceService" and manifest["metadata"]["name"] == "flights-late"
    assert sorted(os.listdir(find_output(root, "train-pytorchjob", "model"))) == [
        "metrics.json",
        "model.json",
        "model.pt",
        "preprocessor.json",
    ]


@pytest.mark.e2e
def test_model_family_xgboost_trains_gates_and_deploys_the_trees_locally(tmp_path):
    settings = {**SMALL, "model_family": "xgboost", "num_boost_round": 80, "nproc_per_node": 2}
    root = run_locally(PIPELINES["training_pipeline"], settings, str(tmp_path))
    assert not _ran(root, "train-pytorchjob")
    model = find_output(root, "train-xgboost", "model")
    assert sorted(os.listdir(model)) == ["metrics.json", "model.json", "model.ubj", "preprocessor.json"]
    assert json.loads(pathlib.Path(model, "metrics.json").read_text())["world_size"] == 2
    report = pathlib.Path(find_output(root, "evaluate-model-2", "report")).read_text()
    assert "Evaluation: PASSED" in report
    status = json.loads(pathlib.Path(find_output(root, "deploy-inferenceservice-2", "status")).read_text())
    assert status["ready"] is True and status["smoke_test"]["max_difference"] < 1e-4


@pytest.mark.e2e
def test_a_gate_that_fails_skips_the_deploy_step(tmp_path):
    root = run_locally(PIPELINES["training_pipeline"], {**SMALL, "thresholds": {"roc_auc": ">=0.999"}}, str(tmp_path))
    assert _ran(root, "evaluate-model")
    report = pathlib.Path(find_output(root, "evaluate-model", "report")).read_text()
    assert "Evaluation: FAILED" in report and "fails &gt;=0.999" in report
    assert not _ran(root, "deploy-inferenceservice")


@pytest.mark.e2e
def test_the_demo_trains_serves_and_prints_a_prediction(demo):
    result, _ = demo
    out = result.stdout
    assert '-> 200 {"predictions": [{"class": ' in out
    assert "mlworkloads serve " in out.splitlines()[-1]
    # One screen: a line per task, the epochs, the gate, the smoke test; kfp.local's JSON in the log.
    assert len(out.splitlines()) <= 60, out
    for figure in ("ingested 30000 rows", "epoch 2/2", "gate passed: roc_auc = ", "smoke test passed: 64 rows"):
        assert figure in out, figure
    assert "executor_input" not in out and "full log: " in out


@pytest.mark.e2e
def test_the_exit_handler_summarises_a_failed_run_and_calls_the_webhook(tmp_path):
    import http.server
    import threading

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        failing = {
            **SMALL,
            "validation_fraction": 0.6,
            "test_fraction": 0.5,
            "webhook_url": f"http://127.0.0.1:{server.server_address[1]}/hook",
        }
        with pytest.raises(RuntimeError, match="split-dataset"):
            run_locally(PIPELINES["training_pipeline"], failing, str(tmp_path))
    finally:
        server.shutdown()
    (root,) = [str(p) for p in tmp_path.iterdir()]
    summary = pathlib.Path(find_output(root, "summarize-run", "summary")).read_text()
    assert "# Run summary ❌ FAILED" in summary and "Notification: webhook answered 204" in summary
    assert received and received[0]["state"] == "FAILED"
    assert not _ran(root, "train-pytorchjob")


@pytest.mark.e2e
def test_a_tracked_run_logs_into_mlflow_registers_the_model_and_the_next_run_gates_against_it(tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    name = f"flights-late-{os.urandom(3).hex()}"

    def run_ids():
        experiment = client.get_experiment_by_name("mlworkloads")
        return {r.info.run_id for r in client.search_runs([experiment.experiment_id])} if experiment else set()

    before = run_ids()
    tracked = {**SMALL, "tracking_uri": mlflow_uri, "registered_model": name}
    run_locally(PIPELINES["training_pipeline"], tracked, str(tmp_path / "first"))
    (new,) = run_ids() - before
    run = client.get_run(new)
    assert run.data.tags["kfp.run_id"] and run.data.tags["mlworkloads.gate"] == "passed"
    assert run.data.params["epochs"] == "2" and run.data.params["world_size"] == "2"
    assert [m.step for m in client.get_metric_history(new, "validation_loss")] == [0, 1]
    assert run.data.metrics["test_roc_auc"] > 0.7
    assert {a.path for a in client.list_artifacts(new)} == {"evaluation", "model", "training"}
    # The gate passed: the model is version 1 with its lineage, and champion once deployed.
    version = client.get_model_version_by_alias(name, "champion")
    assert version.version == "1" and version.run_id == new
    assert version.tags["kfp.run_id"] == run.data.tags["kfp.run_id"] and version.tags["model_family"] == "network"
    assert version.tags["test_uri"].endswith("test") and version.tags["dataset_uri"].endswith("dataset")
    assert float(version.tags["validation_roc_auc"]) > 0.7

    # The next run's gate takes its champion from the registry, and the alias moves on.
    second = tmp_path / "second"
    run_locally(PIPELINES["training_pipeline"], {**tracked, "champion_model": f"{name}@champion"}, str(second))
    report = pathlib.Path(find_output(str(second), "evaluate-model", "report")).read_text()
    assert "champion" in report.lower() and "Evaluation: PASSED" in report
    assert client.get_model_version_by_alias(name, "champion").version == "2"
