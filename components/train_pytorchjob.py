"""Component: DDP training, as a Kubeflow PyTorchJob in a cluster or torchrun on one machine."""

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
def train_pytorchjob(
    train_features: Input[Dataset],
    validation_features: Input[Dataset],
    preprocessor: Input[Artifact],
    model: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    task_config: dsl.TaskConfig,
    backend: str = "auto",
    hidden_sizes: Optional[list] = None,
    dropout: float = 0.1,
    embedding_dim: int = 0,
    model_factory: str = "",
    epochs: int = 10,
    batch_size: int = 1024,
    learning_rate: float = 0.001,
    weight_decay: float = 0.0001,
    lr_schedule: str = "cosine",
    grad_clip: float = 1.0,
    early_stopping_patience: int = 3,
    seed: int = 0,
    num_workers: int = 2,
    nproc_per_node: int = 2,
    gpus_per_worker: int = 0,
    cpu: str = "2",
    memory: str = "8Gi",
    shm_size: str = "2Gi",
    node_selector: Optional[dict] = None,
    tolerations: Optional[list] = None,
    queue_name: str = "",
    namespace: str = "",
    service_account: str = "",
    image_pull_secrets: Optional[list] = None,
    storage_secret: str = "",
    storage_env: Optional[dict] = None,
    bridge: str = "artifacts",
    pvc_name: str = "",
    pvc_mount: str = "/mnt/mlworkloads",
    workspace_path: str = "",
    trainer_image: str = "",
    backoff_limit: int = 3,
    ttl_seconds_after_finished: int = 3600,
    active_deadline_seconds: int = 0,
    clean_pod_policy: str = "Running",
    elastic_min_replicas: int = 0,
    elastic_max_replicas: int = 0,
    max_restarts: int = 0,
    wait_timeout_seconds: int = 86400,
    keep_job: bool = False,
    tracking_uri: str = "",
    tracking_optional: bool = False,
    tracking_child: str = "",
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Trains the tabular network with DistributedDataParallel and exports it.

    In a cluster the step creates a PyTorchJob (one Master, `num_workers - 1` Workers, each
    running `torchrun` with `nproc_per_node` processes), streams the master's log here, and
    deletes the job on every exit path. On one machine it runs `torchrun --standalone`.
    The job name comes from the run id and task name, so a retried step adopts its job.

    Args:
        train_features: Preprocessed train split from `fit_preprocessor`.
        validation_features: Preprocessed validation split (early stopping, best epoch).
        preprocessor: The fitted preprocessor; exported with the model.
        task_config: Filled by KFP from the task's resources, tolerations, node selector,
            affinity and env, and forwarded to the training replicas.
        backend: "auto" (inside a cluster the TrainJob or PyTorchJob it serves, TrainJob first; local
            otherwise), "local", "pytorchjob" (training operator v1.9) or "trainjob" (Kubeflow Trainer v2.3,
            `torch-distributed` runtime).
        hidden_sizes: MLP hidden layer widths; empty for the trainer's default ([128, 64]).
        dropout: Dropout after each hidden layer.
        embedding_dim: Embedding width per categorical column; 0 chooses per column.
        model_factory: Optional "module:function" building your own nn.Module from the feature spec.
        epochs: Maximum epochs.
        batch_size: Global batch size, split across all processes.
        learning_rate: Peak AdamW learning rate (positive).
        weight_decay: AdamW weight decay.
        lr_schedule: "cosine" or "constant".
        grad_clip: Gradient-norm clip; 0 disables.
        early_stopping_patience: Epochs without improvement before stopping; 0 disables.
        seed: Seed for initialisation, shuffling and dropout.
        num_workers: PyTorchJob replicas in all (Master + Workers).
        nproc_per_node: Processes per replica (per GPU on GPU nodes); local processes with the local backend.
        gpus_per_worker: nvidia.com/gpu per replica (requests equal limits).
        cpu: CPU per replica.
        memory: Memory per replica.
        shm_size: Size of the memory-backed /dev/shm per replica.
        node_selector: Node selector for the replicas.
        tolerations: Tolerations for the replicas.
        queue_name: Kueue LocalQueue name; empty for none.
        namespace: Namespace of the PyTorchJob; empty for the step's own.
        service_account: Service account of the replicas.
        image_pull_secrets: Secret names the replicas pull the trainer image with (private registry).
        storage_secret: Secret with the object-store credentials, exposed to the replicas as env.
        storage_env: Plain env for the replicas, e.g. {"AWS_ENDPOINT_URL": "http://minio..."}.
        bridge: How replicas reach the data: "artifacts" (object store), "volume" (a PVC) or
            "workspace" (the KFP workspace: pass workspace_path=dsl.WORKSPACE_PATH_PLACEHOLDER
            in a pipeline with a PipelineConfig workspace).
        pvc_name: PVC for bridge="volume", mounted at pvc_mount in the step and the replicas.
        pvc_mount: Mount path of the PVC.
        workspace_path: The KFP workspace path, for bridge="workspace".
        trainer_image: Trainer image of the replicas; the default is fixed when the pipeline is
            compiled (`mlworkloads compile --registry ...`).
        backoff_limit: Pod restarts before the job fails.
        ttl_seconds_after_finished: The operator deletes a finished job after this.
        active_deadline_seconds: Hard time limit of the job; 0 for none.
        clean_pod_policy: "Running", "All" or "None".
        elastic_min_replicas: Minimum replicas of an elastic job (with elastic_max_replicas).
        elastic_max_replicas: Maximum replicas; 0 for a fixed-size job.
        max_restarts: torchrun restarts of the worker group after a failure (resumes from checkpoint).
        wait_timeout_seconds: How long to wait for the job before deleting it and failing.
        keep_job: Keep the succeeded job for inspection (failed jobs are always deleted).
        tracking_uri: MLflow tracking server rank 0 logs the parameters, per-epoch metrics and
            history into, one MLflow run per pipeline run; empty for the step's
            `MLFLOW_TRACKING_URI`, and no tracking when that is unset too.
        tracking_optional: Train without tracking when the server cannot be reached (else fail first).
        tracking_child: Log into a child run of the pipeline run's MLflow run with this key instead
            (a sweep passes each trial's task id: trials in parallel, each with its own parameters).
        run_id: The pipeline run id (filled in by KFP); names the job and keys the MLflow run.
        task_name: The task name (filled in by KFP); names the job.

    Returns:
        model: Directory with model.pt (state_dict), model.json and preprocessor.json;
            metadata holds framework, torch version, world size and final metrics.
        metrics: Final validation metrics, samples/s and epochs run.
        curves: HTML page with the loss and validation-metric curves per epoch.
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
            "hidden_sizes": hidden_sizes,
            "dropout": dropout,
            "embedding_dim": embedding_dim,
            "model_factory": model_factory,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "lr_schedule": lr_schedule,
            "grad_clip": grad_clip,
            "early_stopping_patience": early_stopping_patience,
            "seed": seed,
            **config_entries(tracking_uri, run_id, tracking_optional, tracking_child),
        },
        job={
            "image": trainer_image,
            "namespace": namespace,
            "num_workers": num_workers,
            "nproc_per_node": nproc_per_node,
            "gpus_per_worker": gpus_per_worker,
            "cpu": cpu,
            "memory": memory,
            "shm_size": shm_size,
            "node_selector": node_selector or {},
            "tolerations": tolerations or [],
            "queue_name": queue_name,
            "service_account": service_account,
            "image_pull_secrets": image_pull_secrets or [],
            "storage_secret": storage_secret,
            "env": storage_env or {},
            "pvc_name": pvc_name,
            "pvc_mount": pvc_mount,
            "backoff_limit": backoff_limit,
            "ttl_seconds_after_finished": ttl_seconds_after_finished,
            "active_deadline_seconds": active_deadline_seconds,
            "clean_pod_policy": clean_pod_policy,
            "elastic_min_replicas": elastic_min_replicas,
            "elastic_max_replicas": elastic_max_replicas,
        },
        passed_through=task_config_fields(task_config),
        backend=backend,
        nproc_per_node=nproc_per_node,
        bridge=bridge,
        workspace_path=workspace_path,
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


with_input_default(train_pytorchjob, "trainer_image", TRAINER_IMAGE)
