"""The pipelines' `prediction_logger_url` reaches every deploy step, as the backend would pass it.

Checked on the compiled IR (what the Kubeflow UI takes): each deploy task's `logger_url` is the
pipeline parameter, handed down through the exit handler's and the conditions' sub-DAGs.
"""

import pathlib

import pytest
import yaml

COMPILED = pathlib.Path(__file__).resolve().parents[2] / "compiled" / "pipelines"


def _parameter_source(spec: dict, component: str, parameter: str) -> str | None:
    """The pipeline parameter a sub-DAG's input comes from, following it up to the root."""
    for name, parent in spec["components"].items():
        for task in parent.get("dag", {}).get("tasks", {}).values():
            if task["componentRef"]["name"] == component:
                source = task["inputs"]["parameters"].get(parameter, {}).get("componentInputParameter")
                return source and _parameter_source(spec, name, source)
    for task in spec["root"]["dag"]["tasks"].values():
        if task["componentRef"]["name"] == component:
            return task["inputs"]["parameters"].get(parameter, {}).get("componentInputParameter")
    return parameter  # no task calls it: the root's own input


@pytest.mark.parametrize("pipeline", ["training_pipeline", "sweep_pipeline"])
def test_every_deploy_step_logs_predictions_where_the_pipeline_parameter_says(pipeline):
    spec = next(yaml.safe_load_all((COMPILED / f"{pipeline}.yaml").read_text()))  # then its platform spec
    deploys = [
        (name, task)
        for name, component in spec["components"].items()
        for task_name, task in component.get("dag", {}).get("tasks", {}).items()
        if task_name.startswith("deploy-inferenceservice")
    ]
    assert len(deploys) == 2  # one per model family's branch
    for component, task in deploys:
        source = task["inputs"]["parameters"]["logger_url"]["componentInputParameter"]
        assert _parameter_source(spec, component, source) == "prediction_logger_url"
    assert spec["root"]["inputDefinitions"]["parameters"]["prediction_logger_url"]["defaultValue"] == ""
