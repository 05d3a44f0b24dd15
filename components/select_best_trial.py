"""Component: pick the best trial of a sweep by its validation metric, across model families."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import Input, Model

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def select_best_trial(
    trials: Input[list[Model]],
    tree_trials: Optional[Input[list[Model]]] = None,
    metric: str = "validation_roc_auc",
) -> NamedTuple(
    "BestTrial",
    [
        ("hidden_sizes", list),
        ("learning_rate", float),
        ("dropout", float),
        ("best_metric", float),
        ("model_family", str),
        ("max_leaves", int),
    ],
):
    """Chooses the model family and hyperparameters of the best trial, read from each trial model's metadata.

    Args:
        trials: The sweep's trained models (`train_pytorchjob` or `train_xgboost`), gathered
            with `dsl.Collected`.
        tree_trials: A second loop's models (the other family's), gathered the same way.
        metric: Validation metric to choose by (higher is better, except losses and errors).

    Returns:
        hidden_sizes: Hidden layer widths of the best trial ([] when the trees won).
        learning_rate: Its learning rate (AdamW's peak, or the trees' shrinkage).
        dropout: Its dropout (0 when the trees won).
        best_metric: Its value of `metric`.
        model_family: "network" or "xgboost": which to retrain, e.g. in `dsl.If`.
        max_leaves: The trees' leaves per tree (63 when the network won).
    """
    from mlworkloads.training.sweep import select_best

    best = select_best([dict(t.metadata) for t in [*trials, *(tree_trials or [])]], metric)
    print(f"best trial: {best}")
    return (
        best.get("hidden_sizes", []),
        best["learning_rate"],
        best.get("dropout", 0.0),
        best["metric"],
        best["model_family"],
        best.get("max_leaves", 63),
    )


with_step_resources(select_best_trial, "tiny")
