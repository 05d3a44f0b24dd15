"""Component: gradient-boosted trees (XGBoost), as a TrainJob or XGBoostJob in a cluster or N workers on one machine."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from mlworkloads.components._spec import TRAINING_PASSTHROUGHS, with_input_default
from mlworkloads.images import COMPONENT_IMAGE, TRAINER_IMAGE


@dsl.component(
    base_image=COMPONENT_IMAGE,
    install_kfp_package=False,
    task_config_passthroughs=TRAINING_PASSTHROUGHS,
)
def train_xgboost(
    train_features: Input[Dataset],
    validation_features: Input[Dataset],
    preprocessor: Input[Artifact],
    model: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    task_config: dsl.TaskConfig,
    backend: str = "auto",
    num_boost_round: int = 1000,
    learning_rate: float = 0.1,
    max_leaves: int = 63,
    max_depth: int = 0,
    grow_policy: str = "lossguide",
    min_child_weight: float = 1.0,
    subsample: float = 1.0,
    colsample_bytree: float = 1.0,
    reg_lambda: float = 1.0,
    reg_alpha: float = 0.0,
    max_bin: int = 256,
    categorical_encoding: str = "ordinal",
    early_stopping_rounds: int = 30,
    checkpoint_interval: int = 50,
    seed: int = 0,
    nthread: int = 0,
    num_workers: int = 2,
    nproc_per_node: int = 1,
    cpu: str = "2",
    memory: str = "8Gi",
    node_selector: Optional[dict] = None,
    tolerations: Optional[list] = None,
    queue_name: str = "",
    namespace: str = "",
    service_account: str = "",
    image_pull_secrets: Optional[list] = None,
    storage_env: Optional[dict] = None,
    bridge: str = "artifacts",
    pvc_name: str = "",
    pvc_mount: str = "/mnt/mlworkloads",
    workspace_path: str = "",
    runtime: str = "",
    trainer_image: str = "",
    backoff_limit: int = 0,
    ttl_seconds_after_finished: int = 3600,
    active_deadline_seconds: int = 0,
    max_restarts: int = 0,
    wait_timeout_seconds: int = 86400,
    keep_job: bool = False,
    tracking_uri: str = "",
    tracking_optional: bool = False,
    tracking_child: str = "",
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Trains gradient-boosted trees with XGBoost's own collective and exports them.

    The trees read the same preprocessed features as the network (the preprocessor's
    `transform`, shared by training and serving) and are served by the same predictor. In a
    cluster the step creates a TrainJob on Kubeflow Trainer's `xgboost-distributed` runtime or
    an XGBoostJob (one worker per node; rank 0 runs XGBoost's tracker), streams rank 0's log
    here, and deletes the job on every exit path. On one machine it starts `nproc_per_node`
    workers. Checkpoints every `checkpoint_interval` rounds; a retried step resumes from them.

    Args:
        train_features: Preprocessed train split from `fit_preprocessor`.
        validation_features: Preprocessed validation split (early stopping, the reported metrics).
        preprocessor: The fitted preprocessor; exported with the model.
        task_config: Filled by KFP from the task's resources, tolerations, node selector,
            affinity and env, and forwarded to the training workers.
        backend: "auto" (inside a cluster the TrainJob or XGBoostJob it serves, TrainJob first;
            local otherwise), "local", "xgboostjob" (training operator v1.9) or "trainjob"
            (Kubeflow Trainer v2.3).
        num_boost_round: Maximum boosting rounds.
        learning_rate: Shrinkage per tree (XGBoost's eta), in (0, 1].
        max_leaves: Leaves per tree with grow_policy "lossguide"; 0 for no limit.
        max_depth: Depth limit per tree; 0 for none.
        grow_policy: "lossguide" (best leaf first) or "depthwise" (needs max_depth).
        min_child_weight: Minimum hessian sum per leaf.
        subsample: Fraction of rows sampled per tree.
        colsample_bytree: Fraction of columns sampled per tree.
        reg_lambda: L2 regularisation of leaf weights.
        reg_alpha: L1 regularisation of leaf weights.
        max_bin: Histogram bins per feature.
        categorical_encoding: "ordinal" (split on the category's frequency rank) or "native"
            (XGBoost's categorical partitions).
        early_stopping_rounds: Rounds without a better validation metric before stopping; 0 never.
        checkpoint_interval: Rounds between checkpoints.
        seed: Seed of row and column sampling.
        nthread: Threads per worker; 0 for the worker's cores.
        num_workers: Workers (nodes) of the cluster job.
        nproc_per_node: Workers on this machine with the local backend.
        cpu: CPU per worker.
        memory: Memory per worker.
        node_selector: Node selector for the workers.
        tolerations: Tolerations for the workers.
        queue_name: Kueue LocalQueue name; empty for none.
        namespace: Namespace of the job; empty for the step's own.
        service_account: Service account of the workers.
        image_pull_secrets: Secret names the workers pull the trainer image with.
        storage_env: Plain env for the workers, e.g. {"AWS_ENDPOINT_URL": "http://minio..."}.
        bridge: How workers reach the data: "artifacts", "volume" or "workspace" (as train_pytorchjob).
        pvc_name: PVC for bridge="volume".
        pvc_mount: Mount path of the PVC.
        workspace_path: The KFP workspace path, for bridge="workspace".
        runtime: The TrainJob's ClusterTrainingRuntime; empty for "xgboost-distributed".
        trainer_image: Image of the workers; the default is fixed at compile time.
        backoff_limit: Pod failures before the XGBoostJob fails (a failed worker cannot rejoin
            a running group, so 0 fails fast and the retried step resumes from the checkpoint).
        ttl_seconds_after_finished: The operator deletes a finished job after this.
        active_deadline_seconds: Hard time limit of the job; 0 for none.
        max_restarts: Local backend: restarts of the worker group after a failure (resumes from
            the checkpoint).
        wait_timeout_seconds: How long to wait for the job before deleting it and failing.
        keep_job: Keep the succeeded job for inspection (failed jobs are always deleted).
        tracking_uri: MLflow tracking server rank 0 logs the parameters, the validation metric of
            every round and the history into, one MLflow run per pipeline run; empty for the
            step's `MLFLOW_TRACKING_URI`, and no tracking when that is unset too.
        tracking_optional: Train without tracking when the server cannot be reached (else fail first).
        tracking_child: Log into a child run of the pipeline run's MLflow run with this key instead
            (a sweep passes each trial's task id: trials in parallel, each with its own parameters).
        run_id: The pipeline run id (filled in by KFP); names the job and keys the MLflow run.
        task_name: The task name (filled in by KFP); names the job.

    Returns:
        model: Directory with model.ubj (the booster), model.json and preprocessor.json;
            metadata holds the family, XGBoost's version, world size and final metrics.
        metrics: Final validation metrics, rounds run and training seconds.
        curves: HTML page with the validation metric per round.
    """
    from mlworkloads.training import launch
    from mlworkloads.training.job_launch import task_config_fields
    from mlworkloads.training.tracking import config_entries

    result = launch.train_step(
        train_features=launch.Inputs(train_features.path, train_features.uri),
        validation_features=launch.Inputs(validation_features.path, validation_features.uri),
        preprocessor=launch.Inputs(preprocessor.path, preprocessor.uri),
        model_dir=model.path,
        model_uri=model.uri,
        training={
            "num_boost_round": num_boost_round,
            "learning_rate": learning_rate,
            "max_leaves": max_leaves,
            "max_depth": max_depth,
            "grow_policy": grow_policy,
            "min_child_weight": min_child_weight,
            "subsample": subsample,
            "colsample_bytree": colsample_bytree,
            "reg_lambda": reg_lambda,
            "reg_alpha": reg_alpha,
            "max_bin": max_bin,
            "categorical_encoding": categorical_encoding,
            "early_stopping_rounds": early_stopping_rounds,
            "checkpoint_interval": checkpoint_interval,
            "seed": seed,
            "nthread": nthread,
            **config_entries(tracking_uri, run_id, tracking_optional, tracking_child),
        },
        job={
            "image": trainer_image,
            "namespace": namespace,
            "num_workers": num_workers,
            "cpu": cpu,
            "memory": memory,
            "node_selector": node_selector or {},
            "tolerations": tolerations or [],
            "queue_name": queue_name,
            "service_account": service_account,
            "image_pull_secrets": image_pull_secrets or [],
            "env": storage_env or {},
            "pvc_name": pvc_name,
            "pvc_mount": pvc_mount,
            "backoff_limit": backoff_limit,
            "ttl_seconds_after_finished": ttl_seconds_after_finished,
            "active_deadline_seconds": active_deadline_seconds,
        },
        passed_through=task_config_fields(task_config),
        model_family="xgboost",
        backend=backend,
        nproc_per_node=nproc_per_node,
        bridge=bridge,
        workspace_path=workspace_path,
        runtime=runtime,
        run_id=run_id,
        task_name=task_name,
        wait_timeout_seconds=wait_timeout_seconds,
        keep_job=keep_job,
        max_restarts=max_restarts,
    )
    model.metadata.update(result.metadata)
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)
    with open(curves.path, "w", encoding="utf-8") as f:
        f.write(result.curves_html)


with_input_default(train_xgboost, "trainer_image", TRAINER_IMAGE)
