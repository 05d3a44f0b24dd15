"""Component: pick the best trial of a sweep by its validation metric."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def select_best_trial(
    trials: Input[list[Model]],
    metric: str = "validation_roc_auc",
) -> NamedTuple(
    "BestTrial", [("hidden_sizes", list), ("learning_rate", float), ("dropout", float), ("best_metric", float)]
):
    """Chooses the hyperparameters of the best trial, read from each trial model's metadata.

    Args:
        trials: The sweep's trained models, gathered with `dsl.Collected`.
        metric: Validation metric to choose by (higher is better, except losses and errors).

    Returns:
        hidden_sizes: Hidden layer widths of the best trial.
        learning_rate: Its learning rate.
        dropout: Its dropout.
        best_metric: Its value of `metric`.
    """
    from mlworkloads.training.sweep import select_best

    best = select_best([dict(t.metadata) for t in trials], metric)
    print(f"best trial: {best}")
    return best["hidden_sizes"], best["learning_rate"], best["dropout"], best["metric"]


with_step_resources(select_best_trial, "tiny")
