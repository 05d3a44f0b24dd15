"""`training_pipeline`: ingest -> split -> preprocess -> train -> evaluate -> (if passed) deploy.

`model_family` picks what is trained: the network (`train_pytorchjob`) or gradient-boosted trees
(`train_xgboost`); each branch has its own evaluate -> deploy, because a task after the branches
would need `dsl.OneOf`, which `kfp.local` does not run.
"""

from kfp import dsl

from mlworkloads.components import summarize_run, train_pytorchjob, train_xgboost
from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
from mlworkloads.pipelines._platform import label_pods
from mlworkloads.pipelines._steps import RUN_SCOPED, add_data_steps, add_gate_and_deploy_after_training


@dsl.pipeline(name="training-pipeline")
def training_pipeline(
    source_uri: str = FLIGHTS_URI,
    label_column: str = FLIGHTS_TASK["label_column"],
    derived_columns: dict = FLIGHTS_TASK["derived_columns"],
    drop_columns: list = FLIGHTS_TASK["drop_columns"],
    row_filter: str = FLIGHTS_TASK["row_filter"],
    max_rows: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    categorical_columns: list = ["flight"],
    max_categories: int = 100,
    backend: str = "auto",
    model_family: str = "network",
    hidden_sizes: list = [128, 64],
    dropout: float = 0.1,
    epochs: int = 8,
    batch_size: int = 1024,
    learning_rate: float = 0.002,
    early_stopping_patience: int = 3,
    seed: int = 0,
    num_boost_round: int = 1000,
    tree_learning_rate: float = 0.1,
    max_leaves: int = 63,
    early_stopping_rounds: int = 30,
    num_workers: int = 2,
    nproc_per_node: int = 2,
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
    min_replicas: int = 1,
    max_replicas: int = 3,
    webhook_url: str = "",
    tracking_uri: str = "",
    registered_model: str = "",
    champion_model: str = "",
    prediction_logger_url: str = "",
):
    """Reads a table, trains the tabular network with DDP or gradient-boosted trees, gates and deploys to KServe.

    The defaults train the bundled nycflights13 task ("arrives more than 15 minutes late").
    An exit handler always runs: on failure it deletes the run's training jobs and takes
    traffic off an unpromoted canary, then writes a run summary and calls the webhook.

    Args:
        source_uri: Table to read (local path, http(s)://, s3://, gs://, or a sample:// table).
        label_column: The target column (derived or present in the table).
        derived_columns: New columns as pandas expressions, e.g. {"late": "arr_delay > 15"}.
        drop_columns: Columns to drop after derivation, e.g. those that leak the label.
        row_filter: pandas expression choosing the rows to keep.
        max_rows: Keep at most this many rows (0: all).
        validation_fraction: Share of rows for validation.
        test_fraction: Share of rows for test.
        split_seed: Split seed.
        categorical_columns: Columns to treat as categorical whatever their type.
        max_categories: Vocabulary size per categorical column.
        backend: Training backend: "auto" (in a cluster the TrainJob, or else the training operator's
            job, it serves), "local", "trainjob", or the operator's kind of the family: "pytorchjob"
            (network) or "xgboostjob" (trees).
        model_family: "network" (the tabular network, DDP) or "xgboost" (gradient-boosted trees;
            the network's settings below are then unused, and the trees' ones used).
        hidden_sizes: MLP hidden layer widths.
        dropout: Dropout after each hidden layer.
        epochs: Maximum epochs.
        batch_size: Global batch size.
        learning_rate: Peak AdamW learning rate.
        early_stopping_patience: Epochs without improvement before stopping.
        seed: Training seed.
        num_boost_round: Trees: maximum boosting rounds.
        tree_learning_rate: Trees: shrinkage per tree.
        max_leaves: Trees: leaves per tree.
        early_stopping_rounds: Trees: rounds without a better validation metric before stopping.
        num_workers: Nodes of the training job (Master + Workers).
        nproc_per_node: Processes per node for the network (local processes with the local backend);
            the trees run one worker per node, and as many here.
        gpus_per_worker: GPUs per replica.
        training_node_selector: Node selector of the training replicas, e.g.
            {"cloud.google.com/gke-accelerator": "nvidia-l4"}.
        training_tolerations: Tolerations of the training replicas (Kubernetes toleration objects).
        image_pull_secrets: Secret names the training replicas and predictor pods pull their images
            with, for a private registry. The steps' own pods pull with the pipeline's service
            account: add the same Secret to its `imagePullSecrets`.
        thresholds: Gate on test metrics, e.g. {"roc_auc": ">=0.70", "log_loss": "<=0.6"}.
        champion_service: Live InferenceService whose model the new one must beat; empty for none.
        min_improvement: How much the new model must beat the champion by.
        service_name: InferenceService to create or update.
        namespace: Namespace of the training job and the InferenceService; empty for the run's own.
        deploy_backend: "auto" (KServe in a cluster, local otherwise), "kserve" or "local".
        canary_traffic_percent: Traffic share of an update before it is verified and promoted.
        min_replicas: Minimum predictor replicas.
        max_replicas: Maximum predictor replicas.
        webhook_url: Optional URL notified with the run's final state.
        tracking_uri: MLflow tracking server: the trainer (rank 0) logs its parameters and per-epoch
            (per-round) metrics, and the evaluate step its test metrics and verdict, into one
            MLflow run per pipeline run (tagged `kfp.run_id`). Empty for the steps'
            `MLFLOW_TRACKING_URI`; no tracking when that is unset too.
        registered_model: Register a model that passed the gate as a new version of this MLflow
            registered model, with its lineage, and move its `champion` alias to the version once
            deployed; empty for no registry.
        champion_model: The gate's champion from MLflow's registry instead of a live service,
            e.g. "flights-late@champion".
        prediction_logger_url: Where KServe's logger agent sends every prediction's request and
            response (a CloudEvents sink, e.g. a Knative broker's URL); `prediction_logs` turns
            what it logged into a Dataset. Empty for no logging.
    """
    exit_task = summarize_run(
        service_name=service_name, namespace=namespace, webhook_url=webhook_url, run_id=RUN_SCOPED["run_id"]
    )
    with dsl.ExitHandler(exit_task, name="train-and-deploy"):
        data = add_data_steps(
            source_uri=source_uri,
            label_column=label_column,
            derived_columns=derived_columns,
            drop_columns=drop_columns,
            row_filter=row_filter,
            max_rows=max_rows,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=split_seed,
            categorical_columns=categorical_columns,
            max_categories=max_categories,
        )
        features = data.features()
        cluster = {
            "backend": backend,
            "num_workers": num_workers,
            "nproc_per_node": nproc_per_node,
            "namespace": namespace,
            "image_pull_secrets": image_pull_secrets,
            **RUN_SCOPED,
        }
        gate_and_deploy = {
            "split": data.split,
            "thresholds": thresholds,
            "champion_service": champion_service,
            "min_improvement": min_improvement,
            "service_name": service_name,
            "namespace": namespace,
            "deploy_backend": deploy_backend,
            "canary_traffic_percent": canary_traffic_percent,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "image_pull_secrets": image_pull_secrets,
            "tracking_uri": tracking_uri,
            "registered_model": registered_model,
            "champion_model": champion_model,
            "prediction_logger_url": prediction_logger_url,
            "ingest": data.ingest,
        }
        label_pods(data.ingest, data.split, data.preprocess)
        # The network first: its tasks keep the names they had before the trees came.
        with dsl.If(model_family != "xgboost", name="network"):
            train = train_pytorchjob(
                **features,
                **cluster,
                hidden_sizes=hidden_sizes,
                dropout=dropout,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                early_stopping_patience=early_stopping_patience,
                seed=seed,
                gpus_per_worker=gpus_per_worker,
                tracking_uri=tracking_uri,
            )
            add_gate_and_deploy_after_training(train, training_node_selector, training_tolerations, **gate_and_deploy)
        with dsl.Else(name="gradient-boosted-trees"):
            trees = train_xgboost(
                **features,
                **cluster,
                num_boost_round=num_boost_round,
                learning_rate=tree_learning_rate,
                max_leaves=max_leaves,
                early_stopping_rounds=early_stopping_rounds,
                seed=seed,
                tracking_uri=tracking_uri,
            )
            add_gate_and_deploy_after_training(trees, training_node_selector, training_tolerations, **gate_and_deploy)
    label_pods(exit_task)
