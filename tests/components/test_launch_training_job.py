"""launch_training_job and evaluate_predictions as KFP runs them (kfp.local), with a team's own
script and data: training here under torchrun, and as a TrainJob and a PyTorchJob on the REAL
test cluster; the gate reads the predictions the team's script wrote.

The script is examples/digits_classifier/train.py, which knows nothing of mlworkloads beyond the
launcher's environment contract; its data comes from a team's own upstream component.
"""

import csv
import pathlib
from typing import NamedTuple

import kfp.local
import pytest
import torch
from kfp import dsl
from kfp.dsl import Dataset, Metrics, Model, Output

from mlworkloads.components import evaluate_predictions, launch_training_job
from mlworkloads.images import COMPONENT_IMAGE, TRAINER_IMAGE

REPO = pathlib.Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = str(REPO / "examples" / "digits_classifier" / "train.py")
#: Fewer than the 1,797 bundled images: the held-out count shows the job read the step's data.
ROWS = 1500


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def digits_dataset(data: Output[Dataset], rows: int):
    """A team's data step: the first `rows` of scikit-learn's bundled digits as one .npz (no download)."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    with open(data.path, "wb") as f:
        np.savez(f, images=digits.images[:rows], labels=digits.target[:rows])


class Trained(NamedTuple):
    model: Model
    metrics: Metrics
    passed: bool


@dsl.pipeline
def team_training(job_kind: str, num_nodes: int, nproc_per_node: int, namespace: str = "") -> Trained:
    data = digits_dataset(rows=ROWS)
    train = launch_training_job(
        image=TRAINER_IMAGE,
        command=["python", TRAIN_SCRIPT],
        args=["--epochs", "8"],
        train_data=data.outputs["data"],
        job_kind=job_kind,
        num_nodes=num_nodes,
        nproc_per_node=nproc_per_node,
        namespace=namespace,
    )
    # The team's model is gated on the predictions its own script wrote into the model directory.
    gate = evaluate_predictions(predictions=train.outputs["model"], thresholds={"accuracy": ">=0.9"})
    return Trained(model=train.outputs["model"], metrics=train.outputs["metrics"], passed=gate.outputs["Output"])


def _launch(tmp_path, **options):
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    return team_training(**options)


def _check_model(task, world_size: int) -> None:
    model, metrics = task.outputs["model"], task.outputs["metrics"]
    files = sorted(p.name for p in pathlib.Path(model.path).iterdir())
    assert files == ["metrics.json", "model.pt", "predictions.csv"]
    assert metrics.metadata["accuracy"] >= 0.9 and metrics.metadata["world_size"] == world_size
    assert model.metadata["files"] == files and model.metadata["accuracy"] == metrics.metadata["accuracy"]
    # The TorchScript model the job wrote answers as its own held-out predictions say.
    network = torch.jit.load(str(pathlib.Path(model.path, "model.pt")))
    with open(pathlib.Path(model.path, "predictions.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ROWS - int(ROWS * 0.8)  # the script holds out a fifth of what it was given
    correct = sum(r["label"] == r["predicted_class"] for r in rows) / len(rows)
    assert correct == pytest.approx(metrics.metadata["accuracy"])
    assert network(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    assert task.outputs["passed"] is True


@pytest.mark.e2e
def test_a_teams_script_trains_here_under_torchrun_with_two_processes(tmp_path):
    task = _launch(tmp_path, job_kind="local", num_nodes=1, nproc_per_node=2)
    _check_model(task, world_size=2)
    assert task.outputs["model"].metadata["job_kind"] == "local"


@pytest.mark.e2e
@pytest.mark.parametrize("job_kind", ["trainjob", "pytorchjob"])
def test_a_teams_script_trains_as_a_two_node_cluster_job(job_kind, tmp_path, cluster_namespace, kube_cluster):
    task = _launch(tmp_path, job_kind=job_kind, num_nodes=2, nproc_per_node=1, namespace=cluster_namespace)
    _check_model(task, world_size=2)
    expected = {"trainjob": "TrainJob", "pytorchjob": "PyTorchJob"}[job_kind]
    assert task.outputs["model"].metadata["job_kind"] == expected
    created = [e for e in kube_cluster.plane.audit_events() if e["verb"] == "create"
               and e.get("objectRef", {}).get("resource") == f"{job_kind}s"
               and e["objectRef"].get("namespace") == cluster_namespace]  # fmt: skip
    assert len(created) == 1 and created[0]["responseStatus"]["code"] == 201
