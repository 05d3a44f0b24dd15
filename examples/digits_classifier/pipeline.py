"""A team's pipeline without the mlworkloads package: its own data step, its own training script
and predictor, and three mlworkloads components loaded from their compiled YAML.

    mlworkloads run examples/digits_classifier/pipeline.py:digits_pipeline

Locally the training runs here under torchrun and the predictor on 127.0.0.1; in a cluster the
training is a TrainJob (or a PyTorchJob, whichever the cluster serves) and the predictor a KServe
InferenceService, promoted only once it answers held-out images as the training predicted them.
"""

import os

from kfp import components, dsl
from kfp.dsl import Dataset, Input, Model, Output

HERE = os.path.dirname(os.path.abspath(__file__))
# Where the components' YAML is; a team would download it (load_component_from_url) or vendor it.
COMPILED = os.environ.get("MLWORKLOADS_COMPILED", os.path.join(HERE, "..", "..", "compiled", "components"))

launch_training_job = components.load_component_from_file(os.path.join(COMPILED, "launch_training_job.yaml"))
evaluate_predictions = components.load_component_from_file(os.path.join(COMPILED, "evaluate_predictions.yaml"))
deploy_model = components.load_component_from_file(os.path.join(COMPILED, "deploy_model.yaml"))

#: The team's image: its scripts, torch, numpy, scikit-learn, fsspec and kserve. Built from
#: ./Dockerfile; locally the steps run in this environment whatever the image.
TEAM_IMAGE = os.environ.get("DIGITS_IMAGE", "ghcr.io/example-team/digits:0.1")


@dsl.component(base_image=TEAM_IMAGE)
def digits_dataset(data: Output[Dataset]):
    """scikit-learn's bundled 8x8 digits (1,797 images, no download) as one .npz."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    with open(data.path, "wb") as f:
        np.savez(f, images=digits.images, labels=digits.target)


@dsl.component(base_image=TEAM_IMAGE)
def held_out_examples(data: Input[Dataset], model: Input[Model], count: int = 8) -> list:
    """V2 requests of held-out images and the classes the training predicted for them: the
    deployed model must answer the same before it gets traffic."""
    import csv
    import os

    import numpy as np

    with open(os.path.join(model.path, "predictions.csv"), newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    images = np.load(data.path)["images"] / 16.0
    chosen = images[[int(r["index"]) for r in rows]].reshape(len(rows), 64)
    images = {"name": "images", "shape": [len(rows), 64], "datatype": "FP32"}
    request = {"inputs": [{**images, "data": chosen.astype("float32").ravel().tolist()}]}
    classes = [int(r["predicted_class"]) for r in rows]
    expected = {"outputs": [{"name": "probabilities"}, {"name": "predicted_class", "data": classes}]}
    return [{"request": request, "expected": expected}]


@dsl.pipeline(name="digits-classifier")
def digits_pipeline(
    job_kind: str = "auto",
    num_nodes: int = 2,
    nproc_per_node: int = 1,
    epochs: str = "8",
    namespace: str = "",
    training_image: str = TEAM_IMAGE,
    predictor_image: str = TEAM_IMAGE,
    scripts_dir: str = HERE,
    service_name: str = "digits",
    deploy_backend: str = "auto",
    deployment_mode: str = "Knative",
):
    """Train the digits CNN with DDP, gate it on its held-out accuracy, serve it with its own predictor.

    Args:
        job_kind: "auto", "trainjob", "pytorchjob" or "local".
        num_nodes: Training nodes on a cluster.
        nproc_per_node: Processes per node (locally, the processes in all).
        epochs: Training epochs (text: kfp.local writes an integer placed in a list as "8.0").
        namespace: Namespace of the training job and the InferenceService; empty for the step's.
        training_image: The team's training image.
        predictor_image: The team's predictor image.
        scripts_dir: Where train.py and predictor.py are in those images.
        service_name: The InferenceService's name.
        deploy_backend: "auto", "kserve" or "local".
        deployment_mode: KServe's "Knative" or "Standard".
    """
    data = digits_dataset()
    train = launch_training_job(
        image=training_image,
        command=["python", f"{scripts_dir}/train.py"],
        args=["--epochs", epochs],
        train_data=data.outputs["data"],
        job_kind=job_kind,
        num_nodes=num_nodes,
        nproc_per_node=nproc_per_node,
        namespace=namespace,
    )
    gate = evaluate_predictions(predictions=train.outputs["model"], thresholds={"accuracy": ">=0.9"})
    with dsl.If(gate.outputs["Output"] == True):  # noqa: E712 - a KFP condition, not a Python comparison
        examples = held_out_examples(data=data.outputs["data"], model=train.outputs["model"])
        deploy_model(
            service_name=service_name,
            model=train.outputs["model"],
            image=predictor_image,
            command=["python", f"{scripts_dir}/predictor.py"],
            args=["--model_name", service_name, "--model_dir", "/mnt/models"],
            verify_examples=examples.output,
            verify_protocol="v2",
            backend=deploy_backend,
            deployment_mode=deployment_mode,
            namespace=namespace,
        )
