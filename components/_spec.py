"""What the components' specs carry beyond their signatures: default step resources and inputs
whose defaults are fixed when the package is imported (at compile time)."""

from __future__ import annotations

from typing import Any

from kfp import dsl
from kfp.dsl import structures

#: What a training component forwards from its task: what the user sets on the task (GPUs,
#: tolerations, node selector, affinity) goes to the training nodes, where the work happens, not
#: to the launching step's pod; env and volumes (the KFP workspace) go to both.
TRAINING_PASSTHROUGHS = [
    dsl.TaskConfigField.RESOURCES,
    dsl.TaskConfigField.KUBERNETES_TOLERATIONS,
    dsl.TaskConfigField.KUBERNETES_NODE_SELECTOR,
    dsl.TaskConfigField.KUBERNETES_AFFINITY,
    dsl.TaskConfigPassthrough(field=dsl.TaskConfigField.ENV, apply_to_task=True),
    dsl.TaskConfigPassthrough(field=dsl.TaskConfigField.KUBERNETES_VOLUMES, apply_to_task=True),
]

#: Requests and memory limits of the step pods, by the kind of work. No CPU limit: a limit only
#: throttles a step that could use an idle core, and a request above our limit would be refused.
#: Override per task with `set_cpu_request`, `set_memory_request` and `set_memory_limit` (raise
#: the limit with the request). `train_pytorchjob` passes its task's resources to the training
#: replicas instead, so its launcher pod takes none of these.
STEP_RESOURCES = {
    "table": {"cpu_request": "1", "memory_request": "2Gi", "memory_limit": "8Gi"},
    "client": {"cpu_request": "250m", "memory_request": "512Mi", "memory_limit": "2Gi"},
    "tiny": {"cpu_request": "100m", "memory_request": "256Mi", "memory_limit": "1Gi"},
}


def with_step_resources(component, kind: str):
    """Gives every task made from `component` the `STEP_RESOURCES[kind]` requests and limits.

    PipelineTask copies the component's container spec, so these are each task's defaults and
    `task.set_cpu_request(...)` overrides them for that task alone.
    """
    component.component_spec.implementation.container.resources = structures.ResourceSpec(**STEP_RESOURCES[kind])
    return component


def with_input_default(component, name: str, value: Any):
    """Sets an input's default in the compiled spec (the executor receives it as an argument).

    For values computed at import time, such as image names under the registry chosen at compile
    time: the function's own source cannot name a module constant, since KFP runs that source alone.
    """
    component.component_spec.inputs[name].default = value
    return component
