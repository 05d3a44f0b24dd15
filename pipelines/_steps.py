"""Task wiring the pipelines share: the data steps, and evaluate -> gate -> deploy."""

from __future__ import annotations

import dataclasses

from kfp import dsl

from mlworkloads.components import (
    deploy_inferenceservice,
    evaluate_model,
    fit_preprocessor,
    ingest_table,
    register_model,
    set_model_alias,
    split_dataset,
)
from mlworkloads.pipelines._platform import label_pods, place_training_replicas

#: KFP's backend substitutes runtime placeholders in task arguments only, never in a
#: component input's default (backend/src/v2/driver/resolve.go): every task that names
#: objects after its run passes them explicitly.
RUN_SCOPED = {"run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER, "task_name": dsl.PIPELINE_TASK_NAME_PLACEHOLDER}


@dataclasses.dataclass
class DataTasks:
    ingest: dsl.PipelineTask
    split: dsl.PipelineTask
    preprocess: dsl.PipelineTask

    def features(self) -> dict:
        """The preprocessed features, as every training component takes them."""
        return {
            "train_features": self.preprocess.outputs["train_features"],
            "validation_features": self.preprocess.outputs["validation_features"],
            "preprocessor": self.preprocess.outputs["preprocessor"],
        }


def add_data_steps(
    *,
    source_uri,
    label_column,
    derived_columns,
    drop_columns,
    row_filter,
    max_rows,
    validation_fraction,
    test_fraction,
    seed,
    categorical_columns,
    max_categories,
) -> DataTasks:
    """Adds the three data tasks to the pipeline being defined (arguments are its channels)."""
    ingest = ingest_table(
        source_uri=source_uri,
        label_column=label_column,
        derived_columns=derived_columns,
        drop_columns=drop_columns,
        row_filter=row_filter,
        max_rows=max_rows,
    )
    # No task-level retry: KFP would retry bad input too (a wrong column, a missing file) and
    # bury its message under three attempts. Reads retry passing storage faults themselves.
    split = split_dataset(
        dataset=ingest.outputs["dataset"],
        label_column=label_column,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    preprocess = fit_preprocessor(
        train=split.outputs["train"],
        validation=split.outputs["validation"],
        test=split.outputs["test"],
        label_column=label_column,
        categorical_columns=categorical_columns,
        max_categories=max_categories,
    )
    return DataTasks(ingest=ingest, split=split, preprocess=preprocess)


def add_gate_and_deploy_after_training(train: dsl.PipelineTask, node_selector, tolerations, **gate_and_deploy) -> None:
    """A training task's placement and labels, then evaluate -> (if passed) deploy after it.

    Each model family's branch of a pipeline calls this for its own training task: a task after
    the branches would need `dsl.OneOf`, which `kfp.local` does not run.
    """
    train.set_caching_options(False)
    place_training_replicas(train, node_selector, tolerations)
    label_pods(train)
    add_evaluate_and_deploy(train=train, **gate_and_deploy)


def add_evaluate_and_deploy(
    *,
    train,
    split,
    thresholds,
    champion_service,
    min_improvement,
    service_name,
    namespace,
    deploy_backend,
    canary_traffic_percent,
    min_replicas,
    max_replicas,
    image_pull_secrets,
    tracking_uri="",
    registered_model="",
    champion_model="",
    ingest=None,
    prediction_logger_url="",
):
    """Adds evaluate -> dsl.If(passed) -> deploy after `train`; returns (evaluate, deploy).

    With a `registered_model` name, a model that passed the gate is also registered in MLflow,
    and `champion` moved to its version once the deploy step has promoted it.
    """
    evaluate = evaluate_model(
        model=train.outputs["model"],
        test=split.outputs["test"],
        thresholds=thresholds,
        champion_service=champion_service,
        champion_model=champion_model,
        namespace=namespace,
        min_improvement=min_improvement,
        tracking_uri=tracking_uri,
        run_id=RUN_SCOPED["run_id"],
    )
    evaluate.set_caching_options(False)
    with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - a KFP condition
        deploy = deploy_inferenceservice(
            model=train.outputs["model"],
            test=split.outputs["test"],
            predictions=evaluate.outputs["predictions"],
            service_name=service_name,
            namespace=namespace,
            backend=deploy_backend,
            canary_traffic_percent=canary_traffic_percent,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            image_pull_secrets=image_pull_secrets,
            logger_url=prediction_logger_url,
            run_id=RUN_SCOPED["run_id"],
        )
        # No task-level retry: a canary that answered wrongly once answers wrongly again, and a
        # retried step would redeploy it. The deployer retries API calls that fail in passing.
        deploy.set_caching_options(False)
        # A pipeline without a registry parameter (the sweep) passes none: no registry tasks.
        has_registry = not (isinstance(registered_model, str) and not registered_model)
        registry = _add_registry(train, split, ingest, deploy, registered_model, tracking_uri) if has_registry else ()
    label_pods(evaluate, deploy, *registry)
    return evaluate, deploy


def _add_registry(train, split, ingest, deploy, registered_model, tracking_uri) -> tuple:
    """register_model -> (after deploy) set_model_alias, when the pipeline's `registered_model` is set."""
    with dsl.If(registered_model != "", name="registry"):
        register = register_model(
            model=train.outputs["model"],
            registered_model=registered_model,
            test=split.outputs["test"],
            tracking_uri=tracking_uri,
            run_id=RUN_SCOPED["run_id"],
            **({"dataset": ingest.outputs["dataset"]} if ingest is not None else {}),
        )
        champion = set_model_alias(
            registered_model=registered_model, version=register.output, tracking_uri=tracking_uri
        ).after(deploy)
    for task in (register, champion):
        task.set_caching_options(False)
    return register, champion
