"""The examples as a team runs them: `mlworkloads run <file>:<pipeline>` here, and the same pipelines
with their training as a TrainJob and their predictor as an InferenceService on the REAL test cluster.

digits_classifier loads launch_training_job, evaluate_predictions and deploy_model from compiled/
with `load_component_from_file`, as a team without the package would; cancer_screening imports
them from the installed package. Their data, training scripts and predictors are the team's own.
"""

import json
import pathlib
import re
import subprocess
import sys

import kfp.local
import pytest

from mlworkloads.images import PREDICTOR_IMAGE, TRAINER_IMAGE

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
# (folder, pipeline function, service name, the metric the gate must report)
CASES = [
    ("digits_classifier", "digits_pipeline", "digits", "accuracy"),
    ("cancer_screening", "screening_pipeline", "screening", "roc_auc"),
]
IDS = [case[0] for case in CASES]


def _status(root: pathlib.Path) -> dict:
    (path,) = [p for p in root.rglob("status") if p.parent.name == "deploy-model"]
    return json.loads(path.read_text())


@pytest.mark.e2e
@pytest.mark.parametrize(("folder", "function", "service", "gate"), CASES, ids=IDS)
def test_the_example_runs_end_to_end_here_with_mlworkloads_run(tmp_path, folder, function, service, gate):
    command = [sys.executable, "-m", "mlworkloads", "run", f"{EXAMPLES / folder}/pipeline.py:{function}"]
    done = subprocess.run(
        [*command, "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for line in ("ok launch-training-job", "gate passed: ", f"{gate} = ", "ok deploy-model"):
        assert line in done.stdout, done.stdout
    assert float(re.search(r"held-out accuracy (\d\.\d+)", done.stdout)[1]) >= 0.9
    status = _status(tmp_path)
    assert status["backend"] == "local" and status["verified"] == {"examples": 1, "max_difference": 0.0}


def _pipeline(folder: str, function: str):
    directory = str(EXAMPLES / folder)
    sys.path.insert(0, directory)
    try:
        import importlib

        sys.modules.pop("pipeline", None)
        return getattr(importlib.import_module("pipeline"), function)
    finally:
        sys.path.remove(directory)
        sys.modules.pop("pipeline", None)


@pytest.mark.e2e
@pytest.mark.parametrize(("folder", "function", "service", "gate"), CASES, ids=IDS)
def test_the_example_trains_as_a_trainjob_and_its_predictor_is_served_by_kserve(
    tmp_path, cluster_namespace, kube_cluster, deployer, folder, function, service, gate
):
    """The pipeline with its training as a TrainJob on the cluster; then its model, predictor and
    held-out examples deployed to KServe by deploy_model's step in a pod, as KFP runs the step.

    The pipeline's own deploy step is run here with the local backend: from outside the cluster
    deploy_model checks a Standard-mode predictor through the API server's service proxy, which
    needs the Service's EndpointSlices, and the test cluster's pods have loopback addresses,
    which Kubernetes never publishes as endpoints (README: simulated pieces).
    """
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    _pipeline(folder, function)(
        job_kind="trainjob", namespace=cluster_namespace, training_image=TRAINER_IMAGE,
        predictor_image=PREDICTOR_IMAGE, deploy_backend="local",
    )  # fmt: skip
    created = [e for e in kube_cluster.plane.audit_events() if e["verb"] == "create"
               and e.get("objectRef", {}).get("resource") == "trainjobs"
               and e["objectRef"].get("namespace") == cluster_namespace]  # fmt: skip
    assert len(created) == 1 and created[0]["responseStatus"]["code"] == 201
    (model,) = [p for p in tmp_path.rglob("launch-training-job/model")]
    (outputs,) = [
        p for p in tmp_path.rglob("executor_output.json") if p.parent.name in ("held-out-examples", "examples-from")
    ]
    examples = json.loads(outputs.read_text())["parameterValues"]["Output"]
    done = deployer.deploy_model(
        str(model), examples, name=service, protocol="v2" if folder == "digits_classifier" else "v1",
        image=PREDICTOR_IMAGE, command=["python", f"{EXAMPLES / folder}/predictor.py"],
        args=["--model_name", service, "--model_dir", "/mnt/models"],
    )  # fmt: skip
    assert done.phase == "Succeeded", done.log
    assert "answered as expected" in done.log or "is Ready with 100% of traffic" in done.log
    served = deployer.service(service)
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in served["status"]["conditions"])
