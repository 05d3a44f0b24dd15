"""Component: point an alias of a registered model (`champion`) at the version just deployed."""

from kfp import dsl

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def set_model_alias(
    registered_model: str,
    version: str,
    alias: str = "champion",
    tracking_uri: str = "",
):
    """Moves `alias` of `registered_model` to `version`: run it after the deploy step, so that the
    alias names the version the endpoint serves, and `evaluate_model(champion_model=...)` of the
    next run compares against it.

    Args:
        registered_model: The registered model's name.
        version: The version (`register_model`'s output).
        alias: The alias to move.
        tracking_uri: MLflow tracking server; empty for `MLFLOW_TRACKING_URI`.
    """
    from mlworkloads.training.registry import set_alias
    from mlworkloads.training.tracking import TrackingSettings

    set_alias(TrackingSettings(tracking_uri), registered_model, version, alias)


with_step_resources(set_model_alias, "tiny")
