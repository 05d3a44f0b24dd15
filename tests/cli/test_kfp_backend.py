"""mlworkloads upload / submit / schedule, and the real `kfp` CLI, against an EMULATED KFP API."""

import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from mlworkloads.cli import app

runner = CliRunner()
COMPILED = pathlib.Path(__file__).parents[2] / "compiled" / "pipelines"


def _ours(spec):
    # A run created from a package carries {"pipeline_spec": ..., "platform_spec": ...}.
    spec = spec.get("pipeline_spec", spec)
    return spec["pipelineInfo"]["name"] == "training-pipeline" and "comp-train-pytorchjob" in spec["components"]


def test_submit_uploads_our_spec_and_starts_a_run_with_typed_parameters(emulated_kfp):
    result = runner.invoke(
        app,
        [
            "submit",
            "training_pipeline",
            "-p",
            "epochs=3",
            "-p",
            "learning_rate=0.01",
            "-p",
            'thresholds={"roc_auc": ">=0.8"}',
            "--experiment",
            "nightly",
            "--wait",
            "--timeout",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    (run,) = emulated_kfp.runs.values()
    assert f"/#/runs/details/{run['run_id']}" in result.output and "SUCCEEDED" in result.output
    assert run["runtime_config"]["parameters"] == {
        "epochs": 3,
        "learning_rate": 0.01,
        "thresholds": {"roc_auc": ">=0.8"},
    }
    (pipeline,) = emulated_kfp.pipelines.values()
    (version,) = emulated_kfp.versions[pipeline["pipeline_id"]]
    assert _ours(version["pipeline_spec"])
    assert run["pipeline_version_reference"] == {
        "pipeline_id": pipeline["pipeline_id"],
        "pipeline_version_id": version["pipeline_version_id"],
    }
    assert [e["display_name"] for e in emulated_kfp.experiments.values()] == ["nightly"]


def test_a_second_submit_uploads_a_new_version_of_the_same_pipeline(emulated_kfp):
    for _ in range(2):
        assert runner.invoke(app, ["submit", "training_pipeline"]).exit_code == 0
    (pipeline_id,) = emulated_kfp.pipelines
    assert len(emulated_kfp.versions[pipeline_id]) == 2 and len(emulated_kfp.runs) == 2


def test_submit_wait_exits_non_zero_when_the_run_fails(emulated_kfp):
    emulated_kfp.run_outcome = "FAILED"
    result = runner.invoke(app, ["submit", "data_pipeline", "--wait", "--timeout", "30"])
    assert result.exit_code == 1 and "ended FAILED" in result.output


def test_schedule_with_caching_off_reaches_every_task_despite_kfp_issue_14253(emulated_kfp):
    result = runner.invoke(
        app,
        [
            "schedule",
            "training_pipeline",
            "--cron",
            "0 2 * * *",
            "--max-concurrency",
            "1",
            "--no-catchup",
            "--no-cache",
            "-p",
            "epochs=4",
        ],
    )
    assert result.exit_code == 0, result.output
    (recurring,) = emulated_kfp.recurring_runs.values()
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert recurring["max_concurrency"] in (1, "1") and recurring["no_catchup"] is True
    assert recurring["runtime_config"]["parameters"] == {"epochs": 4}
    version_id = recurring["pipeline_version_reference"]["pipeline_version_id"]
    (version,) = [v for vs in emulated_kfp.versions.values() for v in vs if v["pipeline_version_id"] == version_id]
    spec = version["pipeline_spec"]
    tasks = [
        t
        for dag in [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
        for t in dag.get("tasks", {}).values()
    ]
    assert len(tasks) >= 8 and all(t["cachingOptions"] == {"enableCache": False} for t in tasks)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "every night"], "expected 5 crontab fields"),
        (["--cron", "0 2 * * *", "--max-concurrency", "0"], "--max-concurrency=0"),
    ],
)
def test_schedule_refuses_bad_settings(emulated_kfp, args, message):
    result = runner.invoke(app, ["schedule", "training_pipeline", *args])
    assert result.exit_code == 2 and message in result.output
    assert not emulated_kfp.recurring_runs


def _kfp_cli(*args):
    kfp = os.path.join(os.path.dirname(sys.executable), "kfp")
    return subprocess.run([kfp, *args], capture_output=True, text=True, timeout=120)


def test_the_compiled_files_work_with_the_kfp_cli(emulated_kfp):
    package = str(COMPILED / "training_pipeline.yaml")
    created = _kfp_cli("--endpoint", emulated_kfp.url, "pipeline", "create", "-p", "flights", package)
    assert created.returncode == 0, created.stderr
    (pipeline,) = emulated_kfp.pipelines.values()
    assert pipeline["display_name"] == "flights" and _ours(
        emulated_kfp.versions[pipeline["pipeline_id"]][0]["pipeline_spec"]
    )

    run = _kfp_cli(
        "--endpoint",
        emulated_kfp.url,
        "run",
        "create",
        "--experiment-name",
        "cli",
        "--run-name",
        "r1",
        "--package-file",
        package,
        "epochs=2",
    )
    assert run.returncode == 0, run.stderr
    (created_run,) = emulated_kfp.runs.values()
    assert _ours(created_run["pipeline_spec"]) and created_run["runtime_config"]["parameters"]["epochs"] in (2, "2")

    recurring = _kfp_cli(
        "--endpoint",
        emulated_kfp.url,
        "recurring-run",
        "create",
        "--experiment-name",
        "cli",
        "--job-name",
        "nightly",
        "--cron-expression",
        "0 0 2 * * *",
        "--pipeline-package-path",
        package,
    )
    assert recurring.returncode == 0, recurring.stderr
    (created_recurring,) = emulated_kfp.recurring_runs.values()
    assert created_recurring["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert _ours(created_recurring["pipeline_spec"])


def test_compiled_pipelines_parse_with_kfps_own_loader():
    from kfp import components

    for path in COMPILED.glob("*.yaml"):
        assert components.load_component_from_file(str(path)).component_spec.name
        spec, platform = yaml.safe_load_all(path.read_text())
        assert spec["root"]["dag"]["tasks"] and "kubernetes" in platform["platforms"]
