"""Kubernetes platform settings (kfp-kubernetes) shared by the pipelines."""

from __future__ import annotations

from kfp import dsl, kubernetes

POD_LABELS = {"app.kubernetes.io/part-of": "mlworkloads"}


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
