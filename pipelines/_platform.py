"""Kubernetes platform settings (kfp-kubernetes) shared by the pipelines."""

from __future__ import annotations

from kfp import dsl, kubernetes

#: Keys of KFP's default object-store Secret, and the variables fsspec/s3fs read them from.
STORAGE_SECRET_KEYS = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
POD_LABELS = {"app.kubernetes.io/part-of": "mlworkloads"}


def use_storage_secret(task: dsl.PipelineTask, storage_secret) -> None:
    """Object-store credentials as environment variables, from a Secret (never a parameter value)."""
    kubernetes.use_secret_as_env(task, secret_name=storage_secret, secret_key_to_env=STORAGE_SECRET_KEYS, optional=True)


def label_pods(*tasks: dsl.PipelineTask) -> None:
    for task in tasks:
        for key, value in POD_LABELS.items():
            kubernetes.add_pod_label(task, key, value)


def place_training_replicas(task: dsl.PipelineTask, node_selector, tolerations) -> None:
    """Node selector and tolerations for the GPU replicas.

    Set on the training task, they reach the PyTorchJob's replicas through the component's
    task-config passthrough, and the launcher pod itself stays schedulable anywhere.
    """
    kubernetes.add_node_selector_json(task, node_selector)
    kubernetes.add_toleration_json(task, tolerations)
