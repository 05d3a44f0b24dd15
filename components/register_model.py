"""Component: register a model that passed the gate as a new version in MLflow's model registry."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(
    model: Input[Model],
    registered_model: str,
    dataset: Optional[Input[Dataset]] = None,
    test: Optional[Input[Dataset]] = None,
    tracking_uri: str = "",
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
) -> str:
    """Registers the model directory as a new version of `registered_model` in MLflow's registry.

    The directory is logged as the `model` artifact of the pipeline run's MLflow run (the one the
    trainer and `evaluate_model` log into, by its `kfp.run_id` tag), and the version records its
    lineage as tags: the KFP run, the model's and the data's URIs, the model family and its
    validation metrics. `set_model_alias` moves `champion` to it once it is deployed.

    Args:
        model: The model that passed the gate (a model directory: network or trees).
        registered_model: The registered model's name (created when missing).
        dataset: The ingested table the model was trained from, recorded as lineage.
        test: The test split it was evaluated on, recorded as lineage.
        tracking_uri: MLflow tracking server; empty for `MLFLOW_TRACKING_URI`.
        run_id: The pipeline run id (filled in by KFP): the MLflow run's key.

    Returns:
        Output: The new version's number.
    """
    from mlworkloads.training.registry import register, version_lineage
    from mlworkloads.training.tracking import TrackingSettings

    lineage = version_lineage(
        model.path,
        run_id,
        model_uri=model.uri,
        dataset_uri=dataset.uri if dataset is not None else "",
        test_uri=test.uri if test is not None else "",
    )
    return register(TrackingSettings(tracking_uri, run_key=run_id), registered_model, model.path, lineage)


with_step_resources(register_model, "client")
