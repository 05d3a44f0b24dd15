"""A team's pipeline in Python on the installed mlworkloads components: their training script run
as a Kubeflow Trainer TrainJob, gated on its held-out scores, served by their own V1 predictor.

    mlworkloads run examples/cancer_screening/pipeline.py:screening_pipeline

With job_kind "auto" the training runs here under torchrun, and in a cluster as a TrainJob where
Kubeflow Trainer is installed (or ask for one: `job_kind="trainjob"`).
"""

import os

from kfp import dsl
from kfp.dsl import Input, Model

from mlworkloads.components import deploy_model, evaluate_predictions, launch_training_job

HERE = os.path.dirname(os.path.abspath(__file__))
TEAM_IMAGE = os.environ.get("SCREENING_IMAGE", "ghcr.io/example-team/screening:0.1")


@dsl.component(base_image=TEAM_IMAGE)
def examples_from(model: Input[Model], count: int = 16) -> list:
    """V1 requests of held-out rows and the scores the training computed for them."""
    import csv
    import os

    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer().data
    with open(os.path.join(model.path, "predictions.csv"), newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    request = {"instances": [features[int(r["index"])].tolist() for r in rows]}
    return [{"request": request, "expected": {"predictions": [float(r["score"]) for r in rows]}}]


@dsl.pipeline(name="cancer-screening")
def screening_pipeline(
    job_kind: str = "auto",
    num_nodes: int = 2,
    nproc_per_node: int = 1,
    namespace: str = "",
    training_image: str = TEAM_IMAGE,
    predictor_image: str = TEAM_IMAGE,
    scripts_dir: str = HERE,
    service_name: str = "screening",
    deploy_backend: str = "auto",
    deployment_mode: str = "Knative",
):
    """Train, gate on held-out ROC AUC and accuracy, and serve the screening model.

    Args:
        job_kind: "auto", "trainjob", "pytorchjob" or "local".
        num_nodes: Training nodes on a cluster.
        nproc_per_node: Processes per node (locally, the processes in all).
        namespace: Namespace of the training job and the InferenceService; empty for the step's.
        training_image: The team's training image.
        predictor_image: The team's predictor image.
        scripts_dir: Where train.py and predictor.py are in those images.
        service_name: The InferenceService's name.
        deploy_backend: "auto", "kserve" or "local".
        deployment_mode: KServe's "Knative" or "Standard".
    """
    train = launch_training_job(
        image=training_image,
        command=["python", f"{scripts_dir}/train.py"],
        job_kind=job_kind,
        num_nodes=num_nodes,
        nproc_per_node=nproc_per_node,
        namespace=namespace,
    )
    gate = evaluate_predictions(
        predictions=train.outputs["model"], thresholds={"roc_auc": ">=0.95", "accuracy": ">=0.9"}
    )
    with dsl.If(gate.outputs["Output"] == True):  # noqa: E712 - a KFP condition, not a Python comparison
        deploy_model(
            service_name=service_name,
            model=train.outputs["model"],
            image=predictor_image,
            command=["python", f"{scripts_dir}/predictor.py"],
            args=["--model_name", service_name, "--model_dir", "/mnt/models"],
            verify_examples=examples_from(model=train.outputs["model"]).output,
            verify_tolerance=1e-5,
            backend=deploy_backend,
            deployment_mode=deployment_mode,
            namespace=namespace,
        )
