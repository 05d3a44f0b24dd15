"""Component: any image and command as distributed training, a Kubeflow Trainer TrainJob or a PyTorchJob."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mlworkloads.components._spec import TRAINING_PASSTHROUGHS
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(
    base_image=COMPONENT_IMAGE,
    install_kfp_package=False,
    task_config_passthroughs=TRAINING_PASSTHROUGHS,
)
def launch_training_job(
    image: str,
    command: list,
    model: Output[Model],
    metrics: Output[Metrics],
    task_config: dsl.TaskConfig,
    args: Optional[list] = None,
    env: Optional[dict] = None,
    train_data: Optional[Input[Dataset]] = None,
    validation_data: Optional[Input[Dataset]] = None,
    base_model: Optional[Input[Model]] = None,
    job_kind: str = "auto",
    runtime: str = "",
    framework: str = "torch",
    num_nodes: int = 1,
    nproc_per_node: int = 1,
    gpus_per_node: int = 0,
    cpu: str = "2",
    memory: str = "8Gi",
    shm_size: str = "2Gi",
    node_selector: Optional[dict] = None,
    tolerations: Optional[list] = None,
    queue_name: str = "",
    namespace: str = "",
    service_account: str = "",
    image_pull_secrets: Optional[list] = None,
    bridge: str = "artifacts",
    pvc_name: str = "",
    pvc_mount: str = "/mnt/mlworkloads",
    workspace_path: str = "",
    active_deadline_seconds: int = 0,
    max_restarts: int = 0,
    wait_timeout_seconds: int = 86400,
    keep_job: bool = False,
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Runs a team's image and command as distributed training (PyTorch or XGBoost) and returns its model.

    With `framework="torch"` every process runs `command` + `args` under torchrun (`RANK`,
    `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` set, as `init_process_group` reads
    them). With `framework="xgboost"` each node runs one XGBoost worker, started as an
    XGBoostJob or Trainer's `xgboost-distributed` runtime starts it (`MASTER_*`, `RANK`,
    `WORLD_SIZE`, or `DMLC_*`): `mlworkloads.training.xgboost_world` reads either and joins
    XGBoost's collective, rank 0 running the tracker. The job finds its
    inputs and where to write through environment variables: rank 0 writes the model to
    `$MLWORKLOADS_MODEL_DIR` (every file there becomes the `model` artifact) and may write a
    `metrics.json` there (a JSON object; its numeric values become `metrics`); checkpoints go to
    `$MLWORKLOADS_CHECKPOINT_DIR`; inputs are at `$MLWORKLOADS_INPUT_TRAIN_DATA`,
    `$MLWORKLOADS_INPUT_VALIDATION_DATA` and `$MLWORKLOADS_INPUT_BASE_MODEL`. These are paths
    locally and with the volume or workspace bridge, object-store URIs (read them with fsspec)
    with the artifacts bridge. Locally (outside a cluster) the same command runs here under
    torchrun, in this step's environment.

    Args:
        image: The training image of the nodes (a cluster job; locally the step's own
            environment runs the command).
        command: What each process runs, e.g. ["python", "train.py"] or ["python", "-m",
            "team.train"]; not torchrun itself, which the launcher adds.
        args: Appended to `command`.
        env: Plain environment variables for the nodes (never secrets: use the task's env with
            secretKeyRef, which KFP passes through).
        train_data: Optional training data, made reachable to every node.
        validation_data: Optional validation data.
        base_model: Optional model to fine-tune.
        task_config: Filled by KFP from the task's resources, tolerations, node selector,
            affinity and env, and forwarded to the training nodes.
        job_kind: "auto" (inside a cluster the TrainJob or the training operator's job it serves,
            TrainJob first; local otherwise), "trainjob" (Kubeflow Trainer v2.3), "pytorchjob"
            or "xgboostjob" (training operator v1.9, as `framework` says) or "local".
        runtime: The TrainJob's ClusterTrainingRuntime; empty for `torch-distributed`
            (`xgboost-distributed` for XGBoost).
        framework: "torch" (torchrun on every node) or "xgboost" (one XGBoost worker per node;
            locally `nproc_per_node` workers).
        num_nodes: Nodes of the job (a PyTorchJob: one Master plus Workers).
        nproc_per_node: Processes per node (one per GPU on GPU nodes); local processes locally.
        gpus_per_node: nvidia.com/gpu per node (requests equal limits).
        cpu: CPU per node.
        memory: Memory per node.
        shm_size: Size of the memory-backed /dev/shm per node.
        node_selector: Node selector for the nodes.
        tolerations: Tolerations for the nodes.
        queue_name: Kueue LocalQueue name; empty for none.
        namespace: Namespace of the job; empty for the step's own.
        service_account: Service account of the nodes.
        image_pull_secrets: Secret names the nodes pull `image` with (private registry).
        bridge: How the nodes reach the data: "artifacts" (object store), "volume" (a PVC) or
            "workspace" (the KFP workspace: pass workspace_path=dsl.WORKSPACE_PATH_PLACEHOLDER
            in a pipeline with a PipelineConfig workspace).
        pvc_name: PVC for bridge="volume", mounted at pvc_mount in the step and the nodes.
        pvc_mount: Mount path of the PVC.
        workspace_path: The KFP workspace path, for bridge="workspace".
        active_deadline_seconds: Hard time limit of the job; 0 for none.
        max_restarts: torchrun restarts of the worker group after a failure.
        wait_timeout_seconds: How long to wait for the job before deleting it and failing.
        keep_job: Keep the succeeded job for inspection (failed jobs are always deleted).
        run_id: The pipeline run id (filled in by KFP); names the job.
        task_name: The task name (filled in by KFP); names the job.

    Returns:
        model: The files the job wrote to `$MLWORKLOADS_MODEL_DIR`; metadata names the job.
        metrics: The numeric values of the job's `metrics.json`.
    """
    from mlworkloads.training.job_launch import Inputs, launch_step, task_config_fields

    result = launch_step(
        command=command,
        args=args or [],
        inputs={
            "train_data": Inputs(train_data.path, train_data.uri) if train_data else None,
            "validation_data": Inputs(validation_data.path, validation_data.uri) if validation_data else None,
            "base_model": Inputs(base_model.path, base_model.uri) if base_model else None,
        },
        model_dir=model.path,
        model_uri=model.uri,
        job={
            "image": image,
            "namespace": namespace,
            "num_workers": num_nodes,
            "nproc_per_node": nproc_per_node,
            "gpus_per_worker": gpus_per_node,
            "cpu": cpu,
            "memory": memory,
            "shm_size": shm_size,
            "node_selector": node_selector or {},
            "tolerations": tolerations or [],
            "queue_name": queue_name,
            "service_account": service_account,
            "image_pull_secrets": image_pull_secrets or [],
            "env": {str(k): str(v) for k, v in (env or {}).items()},
            "pvc_name": pvc_name,
            "pvc_mount": pvc_mount,
            "active_deadline_seconds": active_deadline_seconds,
        },
        passed_through=task_config_fields(task_config),
        backend=job_kind,
        nproc_per_node=nproc_per_node,
        runtime=runtime,
        framework=framework,
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
