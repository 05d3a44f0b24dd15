"""`sweep_pipeline`: a hyperparameter sweep over both model families, then the best retrained, gated and deployed.

The network's configurations and the trees' run as two loops; `select_best_trial` compares every
trial on the same validation metric, and the winner's family is retrained in its own branch
with its own evaluate -> deploy (a task after the branches would need `dsl.OneOf`, which
`kfp.local` does not run).
"""

from kfp import dsl

from mlworkloads.components import select_best_trial, summarize_run, train_pytorchjob, train_xgboost
from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
from mlworkloads.pipelines._platform import label_pods, place_training_replicas
from mlworkloads.pipelines._steps import RUN_SCOPED, add_data_steps, add_gate_and_deploy_after_training

DEFAULT_CONFIGURATIONS = [
    {"hidden_sizes": [64], "learning_rate": 0.004, "dropout": 0.0},
    {"hidden_sizes": [128, 64], "learning_rate": 0.002, "dropout": 0.1},
    {"hidden_sizes": [256, 128], "learning_rate": 0.001, "dropout": 0.2},
]
DEFAULT_TREE_CONFIGURATIONS = [
    {"learning_rate": 0.1, "max_leaves": 31},
    {"learning_rate": 0.1, "max_leaves": 63},
]
#: Trials run at once; a compile-time setting in KFP (ParallelFor's parallelism is static).
PARALLELISM = 2


@dsl.pipeline(name="sweep-pipeline")
def sweep_pipeline(
    source_uri: str = FLIGHTS_URI,
    label_column: str = FLIGHTS_TASK["label_column"],
    derived_columns: dict = FLIGHTS_TASK["derived_columns"],
    drop_columns: list = FLIGHTS_TASK["drop_columns"],
    row_filter: str = FLIGHTS_TASK["row_filter"],
    max_rows: int = 0,
    categorical_columns: list = ["flight"],
    configurations: list = DEFAULT_CONFIGURATIONS,
    tree_configurations: list = DEFAULT_TREE_CONFIGURATIONS,
    trial_epochs: int = 2,
    trial_rounds: int = 200,
    selection_metric: str = "validation_roc_auc",
    epochs: int = 8,
    num_boost_round: int = 1000,
    backend: str = "auto",
    tree_backend: str = "auto",
    nproc_per_node: int = 1,
    num_workers: int = 2,
    gpus_per_worker: int = 0,
    training_node_selector: dict = {},
    training_tolerations: list = [],
    image_pull_secrets: list = [],
    thresholds: dict = {"roc_auc": ">=0.70"},
    champion_service: str = "",
    min_improvement: float = 0.0,
    service_name: str = "flights-late",
    namespace: str = "",
    deploy_backend: str = "auto",
    canary_traffic_percent: int = 10,
    webhook_url: str = "",
    tracking_uri: str = "",
    prediction_logger_url: str = "",
):
    """Trains one short trial per configuration of either family (2 at a time), retrains the best, gates and deploys it.

    Args:
        source_uri: Table to read (local path, http(s)://, s3://, gs://, or a sample:// table).
        label_column: The target column.
        derived_columns: New columns as pandas expressions.
        drop_columns: Columns to drop after derivation.
        row_filter: pandas expression choosing the rows to keep.
        max_rows: Keep at most this many rows (0: all).
        categorical_columns: Columns to treat as categorical.
        configurations: One dict per network trial with hidden_sizes, learning_rate and dropout.
        tree_configurations: One dict per gradient-boosted-trees trial with learning_rate and
            max_leaves (at least one: kfp.local cannot collect the outputs of an empty loop).
        trial_epochs: Epochs of each network trial.
        trial_rounds: Boosting rounds of each trees trial.
        selection_metric: Validation metric that picks the best trial, of either family.
        epochs: Epochs of the final training when the network wins.
        num_boost_round: Maximum boosting rounds of the final training when the trees win.
        backend: The network's training backend: "auto" (in a cluster the TrainJob, or else the
            PyTorchJob, it serves), "local", "trainjob" or "pytorchjob".
        tree_backend: The trees' training backend: "auto" (in a cluster the TrainJob, or else the
            XGBoostJob, it serves), "local", "trainjob" or "xgboostjob".
        nproc_per_node: Processes per replica (local processes with the local backend).
        num_workers: PyTorchJob replicas per training.
        gpus_per_worker: GPUs per replica.
        training_node_selector: Node selector of the training replicas.
        training_tolerations: Tolerations of the training replicas.
        image_pull_secrets: Secret names the training replicas and predictor pods pull their images
            with, for a private registry (the steps pull with the pipeline's service account).
        thresholds: Gate on test metrics of the final model.
        champion_service: Live InferenceService whose model the new one must beat; empty for none.
        min_improvement: How much the new model must beat the champion by.
        service_name: InferenceService to create or update.
        namespace: Namespace of the jobs and the InferenceService.
        deploy_backend: "auto", "kserve" or "local".
        canary_traffic_percent: Traffic share of an update before promotion.
        webhook_url: Optional URL notified with the run's final state.
        tracking_uri: MLflow tracking server: each trial logs into a child run of the pipeline
            run's MLflow run (its own parameters and curves), the final training and the gate into
            that run; empty for the steps' `MLFLOW_TRACKING_URI`, no tracking when that is unset too.
        prediction_logger_url: Where KServe's logger agent sends every prediction's request and
            response (a CloudEvents sink, e.g. a Knative broker's URL); `prediction_logs` turns
            what it logged into a Dataset. Empty for no logging.
    """
    exit_task = summarize_run(
        service_name=service_name, namespace=namespace, webhook_url=webhook_url, run_id=RUN_SCOPED["run_id"]
    )
    with dsl.ExitHandler(exit_task, name="sweep-and-deploy"):
        data = add_data_steps(
            source_uri=source_uri,
            label_column=label_column,
            derived_columns=derived_columns,
            drop_columns=drop_columns,
            row_filter=row_filter,
            max_rows=max_rows,
            validation_fraction=0.1,
            test_fraction=0.1,
            seed=0,
            categorical_columns=categorical_columns,
            max_categories=100,
        )
        features = data.features()
        cluster = {
            "backend": backend,
            "nproc_per_node": nproc_per_node,
            "num_workers": num_workers,
            "namespace": namespace,
            "image_pull_secrets": image_pull_secrets,
            **RUN_SCOPED,
        }
        network = {**cluster, "gpus_per_worker": gpus_per_worker}
        trees = {**cluster, "backend": tree_backend}
        gate_and_deploy = {
            "split": data.split,
            "thresholds": thresholds,
            "champion_service": champion_service,
            "min_improvement": min_improvement,
            "service_name": service_name,
            "namespace": namespace,
            "deploy_backend": deploy_backend,
            "canary_traffic_percent": canary_traffic_percent,
            "min_replicas": 1,
            "max_replicas": 3,
            "image_pull_secrets": image_pull_secrets,
            "tracking_uri": tracking_uri,
            "prediction_logger_url": prediction_logger_url,
        }
        # Each trial its own MLflow child run, keyed by its task id: the trials share a run id.
        trial_tracking = {"tracking_uri": tracking_uri, "tracking_child": dsl.PIPELINE_TASK_ID_PLACEHOLDER}
        with dsl.ParallelFor(configurations, parallelism=PARALLELISM, name="trials") as configuration:
            trial = train_pytorchjob(
                **features,
                **network,
                epochs=trial_epochs,
                hidden_sizes=configuration.hidden_sizes,
                learning_rate=configuration.learning_rate,
                dropout=configuration.dropout,
                **trial_tracking,
            )
            trial.set_caching_options(False)
            place_training_replicas(trial, training_node_selector, training_tolerations)
        with dsl.ParallelFor(tree_configurations, parallelism=PARALLELISM, name="tree-trials") as tree_configuration:
            tree_trial = train_xgboost(
                **features,
                **trees,
                num_boost_round=trial_rounds,
                learning_rate=tree_configuration.learning_rate,
                max_leaves=tree_configuration.max_leaves,
                **trial_tracking,
            )
            tree_trial.set_caching_options(False)
            place_training_replicas(tree_trial, training_node_selector, training_tolerations)
        best = select_best_trial(
            trials=dsl.Collected(trial.outputs["model"]),
            tree_trials=dsl.Collected(tree_trial.outputs["model"]),
            metric=selection_metric,
        )
        label_pods(data.ingest, data.split, data.preprocess, trial, tree_trial, best)
        # The network first: its tasks keep the names they had before the trees came.
        with dsl.If(best.outputs["model_family"] != "xgboost", name="network-won"):
            final = train_pytorchjob(
                **features,
                **network,
                epochs=epochs,
                hidden_sizes=best.outputs["hidden_sizes"],
                learning_rate=best.outputs["learning_rate"],
                dropout=best.outputs["dropout"],
                tracking_uri=tracking_uri,
            )
            add_gate_and_deploy_after_training(final, training_node_selector, training_tolerations, **gate_and_deploy)
        with dsl.Else(name="trees-won"):
            final_trees = train_xgboost(
                **features,
                **trees,
                num_boost_round=num_boost_round,
                learning_rate=best.outputs["learning_rate"],
                max_leaves=best.outputs["max_leaves"],
                tracking_uri=tracking_uri,
            )
            add_gate_and_deploy_after_training(
                final_trees, training_node_selector, training_tolerations, **gate_and_deploy
            )
    label_pods(exit_task)
