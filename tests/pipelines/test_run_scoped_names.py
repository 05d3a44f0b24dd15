"""Run-scoped names in a cluster: KFP placeholders must reach the pod as task arguments.

KFP's backend substitutes `{{$.pipeline_job_uuid}}` and friends only in task arguments
(runtime constants, `backend/src/v2/driver/resolve.go`); a component input's default is copied
into the executor input verbatim (`addDefaultParams` in `backend/src/v2/component/launcher_v2.go`).
kfp.local substitutes both, so only the compiled IR shows the difference.
"""

import pathlib

import pytest
import yaml

from mlworkloads.errors import RunIdentityError
from mlworkloads.kube import resolve_run_id, resolve_task_name
from mlworkloads.training.job_settings import job_name

COMPILED = pathlib.Path(__file__).resolve().parents[2] / "compiled" / "pipelines"
PIPELINE_FILES = sorted(COMPILED.glob("*.yaml"))


def _dags(spec):
    """(component name, dag) for the root and every sub-DAG (exit handler, conditions, loops)."""
    yield "root", spec["root"]
    for name, component in spec["components"].items():
        if "dag" in component:
            yield name, component


def _placeholder_defaults(component):
    parameters = (component.get("inputDefinitions") or {}).get("parameters") or {}
    return {
        name: p["defaultValue"]
        for name, p in parameters.items()
        if isinstance(p.get("defaultValue"), str) and "{{$.pipeline_" in p["defaultValue"]
    }


def _defaulted_placeholders(spec):
    """Every (dag, task, input) whose only source of a `{{$.pipeline_...}}` value is a default."""
    parents = {}  # sub-DAG component -> (parent dag component, the task that runs it)
    for dag_name, dag in _dags(spec):
        for task in dag["dag"]["tasks"].values():
            parents.setdefault(task["componentRef"]["name"], []).append((dag_name, task))

    def source_is_a_default(dag_name, parameter):
        """Follows componentInputParameter up the DAGs; True if it ends at a placeholder default."""
        component = spec["root"] if dag_name == "root" else spec["components"][dag_name]
        if parameter in _placeholder_defaults(component):
            return True
        for parent, task in parents.get(dag_name, []):
            given = (task.get("inputs") or {}).get("parameters", {}).get(parameter)
            if (
                given
                and "componentInputParameter" in given
                and source_is_a_default(parent, given["componentInputParameter"])
            ):
                return True
        return False

    wrong = []
    for dag_name, dag in _dags(spec):
        for task_name, task in dag["dag"]["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            given = (task.get("inputs") or {}).get("parameters") or {}
            for parameter in _placeholder_defaults(component):
                source = given.get(parameter)
                if source is None or (
                    "componentInputParameter" in source
                    and source_is_a_default(dag_name, source["componentInputParameter"])
                ):
                    wrong.append(f"{dag_name}/{task_name}.{parameter}")
    return wrong


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.stem)
def test_no_task_takes_a_kfp_placeholder_from_a_component_default(path):
    spec = next(yaml.safe_load_all(path.read_text(encoding="utf-8")))  # then the platform spec
    assert _defaulted_placeholders(spec) == []


def test_the_check_finds_a_task_that_leaves_the_run_id_to_its_default(tmp_path):
    from kfp import compiler, dsl

    from mlworkloads.components import summarize_run

    @dsl.component
    def tag(run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
        return run_id

    @dsl.pipeline(name="team")
    def team():
        exit_task = summarize_run()
        with dsl.ExitHandler(exit_task):
            tag()
            tag(run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)

    path = tmp_path / "team.yaml"
    compiler.Compiler().compile(team, str(path))
    found = _defaulted_placeholders(next(yaml.safe_load_all(path.read_text())))
    assert sorted(found) == ["comp-exit-handler-1/tag.run_id", "root/summarize-run.run_id"]


def test_compiled_pipelines_are_all_checked():
    assert {p.stem for p in PIPELINE_FILES} == {"data_pipeline", "sweep_pipeline", "training_pipeline"}


class _Pods:
    """The one call `resolve_run_id` makes, answering as the API server answers for a KFP pod."""

    def __init__(self, labels):
        self.labels, self.asked = labels, []

    def read_namespaced_pod(self, name, namespace):
        from kubernetes import client

        self.asked.append((name, namespace))
        return client.V1Pod(metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=self.labels))


def test_a_literal_run_id_placeholder_is_replaced_by_the_pods_run_label(monkeypatch):
    monkeypatch.setenv("KFP_POD_NAME", "training-pipeline-x7k2p-system-container-impl-123")
    pods = _Pods({"pipeline/runid": "3f1c0de2-run", "workflows.argoproj.io/workflow": "training-pipeline-x7k2p"})
    assert resolve_run_id("{{$.pipeline_job_uuid}}", core_api=pods) == "3f1c0de2-run"
    assert pods.asked == [("training-pipeline-x7k2p-system-container-impl-123", "default")]
    assert resolve_run_id("given-run", core_api=pods) == "given-run" and len(pods.asked) == 1


def test_a_literal_placeholder_without_a_run_label_is_refused_naming_the_argument():
    with pytest.raises(RunIdentityError, match=r"pass run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER as a task argument"):
        resolve_run_id("{{$.pipeline_job_uuid}}", core_api=_Pods({}))


def test_a_literal_task_name_falls_back_and_the_output_uri_keeps_jobs_apart():
    task = resolve_task_name("{{$.pipeline_task_name}}", "train-pytorchjob")
    assert task == "train-pytorchjob"
    first = job_name("run-1", task, '{"model_uri": "minio://mlpipeline/v2/artifacts/p/run-1/train-a/1/model"}')
    second = job_name("run-1", task, '{"model_uri": "minio://mlpipeline/v2/artifacts/p/run-1/train-b/2/model"}')
    assert first != second and "{{" not in first
