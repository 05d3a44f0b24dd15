"""What the `evaluate_model` component does: the evaluation gate, against the model being served.

It sits in the serving layer because its champion may be the model a live InferenceService
serves (the one it records in `mlworkloads.io/model-uri`); scoring itself is
`training.evaluation`'s.
"""

from __future__ import annotations

from typing import Any

from mlworkloads.data.steps import read_parquet, write_outputs
from mlworkloads.serving.errors import DeployFailed
from mlworkloads.serving.inferenceservice import MODEL_URI_ANNOTATION
from mlworkloads.serving.kserve_api import call_api, client, namespace_or_default
from mlworkloads.training import evaluation, registry, tracking
from mlworkloads.training.export import load


def live_model_uri(name: str, namespace: str = "", kserve=None) -> str:
    """The model URI the live InferenceService `name` serves (the champion)."""
    namespace = namespace_or_default(namespace)
    kserve = kserve or client()
    service = call_api(lambda: kserve.get(name, namespace=namespace), "get", namespace)
    uri = (service["metadata"].get("annotations") or {}).get(MODEL_URI_ANNOTATION)
    if not uri:
        raise DeployFailed(f"InferenceService {namespace}/{name} does not record its model ({MODEL_URI_ANNOTATION}).")
    return uri


def gate_step(
    *,
    model_path: str,
    test_path: str,
    report_path: str,
    predictions_path: str,
    thresholds: dict[str, Any],
    champion_dir: str = "",
    champion_service: str = "",
    namespace: str = "",
    min_improvement: float = 0.0,
    primary_metric: str = "",
    tracking_settings: tracking.TrackingSettings | None = None,
    champion_model: str = "",
) -> evaluation.Evaluation:
    """Scores the test split, compares with the champion (a directory, a registered model's version
    in MLflow, `champion_model`, or what `champion_service` serves) and writes the report and the
    predictions table; returns the evaluation.

    With tracking, the test metrics (`test_<name>`) and the verdict go into the pipeline run's
    MLflow run (the trainer's); an unreachable server fails the step first unless optional.
    """
    tracked = tracking.start(tracking_settings, "evaluate") if tracking_settings else None
    if champion_model and not champion_dir:
        # The registry's champion ("name@champion"), downloaded from MLflow.
        champion_dir = registry.download(tracking_settings or tracking.TrackingSettings(), champion_model)
    if champion_service and not champion_dir:
        champion_dir = live_model_uri(champion_service, namespace)
    result = evaluation.evaluate(
        load(model_path),
        read_parquet(test_path, "test"),
        thresholds=thresholds,
        champion=load(champion_dir) if champion_dir else None,
        min_improvement=min_improvement,
        primary_metric=primary_metric,
    )
    write_outputs(texts={report_path: evaluation.report_html(result)}, tables={predictions_path: result.predictions})
    if tracked:
        tracked.log_metrics({f"test_{name}": value for name, value in result.metrics.items()})
        tracked.set_tags({"mlworkloads.gate": "passed" if result.passed else "failed"})
        tracked.log_dict({"passed": result.passed, "reasons": result.reasons}, "evaluation/gate.json")
    return result
