"""The platform settings land in the compiled platform spec exactly as asked (read back from YAML)."""

import pathlib

import pytest
import yaml

COMPILED = pathlib.Path(__file__).parents[2] / "compiled" / "pipelines"


def _platform(name):
    documents = list(yaml.safe_load_all((COMPILED / f"{name}.yaml").read_text()))
    assert len(documents) == 2, "no platform spec was compiled"
    return documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.mark.parametrize("executor", ["exec-train-pytorchjob", "exec-train-xgboost"])
def test_training_replicas_get_the_node_selector_and_tolerations_parameters(executor):
    train = _platform("training_pipeline")[executor]
    assert train["nodeSelector"] == {
        "nodeSelectorJson": {"componentInputParameter": "pipelinechannel--training_node_selector"}
    }
    assert train["tolerations"] == [
        {"tolerationJson": {"componentInputParameter": "pipelinechannel--training_tolerations"}}
    ]


@pytest.mark.parametrize("name", ["data_pipeline", "training_pipeline", "sweep_pipeline"])
def test_no_step_maps_the_artifact_stores_keys_over_the_users_own_credentials(name):
    """KFP's store keys as AWS_* would shadow a team's own credentials (IRSA, workload identity)
    for its own s3:// sources; the steps read the store's keys the way KFP's launcher does."""
    shadowing = [
        executor
        for executor, config in _platform(name).items()
        for secret in config.get("secretAsEnv") or []
        for mapping in secret["keyToEnv"]
        if mapping["envVar"].startswith("AWS_")
    ]
    assert shadowing == []


def test_every_step_carries_the_pod_label():
    executors = _platform("training_pipeline")
    # the data steps, the summary, and per model family: train, evaluate, deploy, register, alias
    assert len(executors) == 14
    for name, config in executors.items():
        assert config["podMetadata"]["labels"] == {"app.kubernetes.io/part-of": "mlworkloads"}, name


def test_the_train_component_forwards_task_settings_to_the_replicas():
    spec = yaml.safe_load((COMPILED.parent / "components" / "train_pytorchjob.yaml").read_text())
    passthroughs = spec["components"]["comp-train-pytorchjob"]["taskConfigPassthroughs"]
    fields = {p["field"]: p.get("applyToTask", False) for p in passthroughs}
    assert fields == {
        "RESOURCES": False,
        "KUBERNETES_TOLERATIONS": False,
        "KUBERNETES_NODE_SELECTOR": False,
        "KUBERNETES_AFFINITY": False,
        "ENV": True,
        "KUBERNETES_VOLUMES": True,
    }


def test_caching_is_off_for_training_evaluation_and_deploy_and_on_for_the_data_steps():
    spec = yaml.safe_load_all((COMPILED / "training_pipeline.yaml").read_text()).__next__()
    tasks = {}

    def walk(dag):
        for name, task in dag.get("tasks", {}).items():
            tasks[name] = task

    walk(spec["root"]["dag"])
    for component in spec["components"].values():
        walk(component.get("dag", {}))
    trees = ("train-xgboost", "evaluate-model-2", "deploy-inferenceservice-2")
    for name in ("train-pytorchjob", "evaluate-model", "deploy-inferenceservice", *trees):
        assert tasks[name]["cachingOptions"] == {}, name
    for name in ("ingest-table", "split-dataset", "fit-preprocessor"):
        assert tasks[name]["cachingOptions"] == {"enableCache": True}, name


@pytest.mark.parametrize("name", ["data_pipeline", "training_pipeline", "sweep_pipeline"])
def test_no_task_carries_a_kfp_retry_policy(name):
    """KFP retries a task whatever failed: bad input would fail three times before the user heard
    of it. Transient faults are retried inside the steps (storage reads, API calls) instead."""
    spec = next(yaml.safe_load_all((COMPILED / f"{name}.yaml").read_text()))
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    assert [task for dag in dags for task, body in dag["tasks"].items() if "retryPolicy" in body] == []


def test_the_image_pull_secrets_parameter_reaches_the_replicas_and_the_predictor():
    for name in ("training_pipeline", "sweep_pipeline"):
        spec = next(yaml.safe_load_all((COMPILED / f"{name}.yaml").read_text()))
        assert spec["root"]["inputDefinitions"]["parameters"]["image_pull_secrets"]["parameterType"] == "LIST"
        tasks = {}
        for component in spec["components"].values():
            tasks.update(component.get("dag", {}).get("tasks", {}))
        tasks.update(spec["root"]["dag"]["tasks"])
        wired = {
            task_name
            for task_name, task in tasks.items()
            if task.get("inputs", {}).get("parameters", {}).get("image_pull_secrets", {}).get("componentInputParameter")
            == "pipelinechannel--image_pull_secrets"
        }
        expected = {"deploy-inferenceservice", "train-pytorchjob"}
        if name == "training_pipeline":
            expected |= {"deploy-inferenceservice-2", "train-xgboost"}
        if name == "sweep_pipeline":
            expected |= {"train-pytorchjob-2"}
        assert expected <= wired, (name, wired)


def test_a_team_pipeline_with_a_kfp_workspace_hands_it_to_the_replicas(tmp_path):
    # The documented use of bridge="workspace": KFP mounts the run's workspace on the step and,
    # through the component's KUBERNETES_VOLUMES passthrough, gives the launcher its volume.
    from kfp import compiler, dsl

    from mlworkloads.components import fit_preprocessor, ingest_table, split_dataset, train_pytorchjob

    @dsl.pipeline(pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size="20Gi")))
    def team(uri: str):
        data = ingest_table(source_uri=uri, label_column="late")
        split = split_dataset(dataset=data.outputs["dataset"], label_column="late")
        features = fit_preprocessor(
            train=split.outputs["train"], validation=split.outputs["validation"], test=split.outputs["test"],
            label_column="late",
        )  # fmt: skip
        train_pytorchjob(
            train_features=features.outputs["train_features"],
            validation_features=features.outputs["validation_features"],
            preprocessor=features.outputs["preprocessor"],
            bridge="workspace",
            workspace_path=dsl.WORKSPACE_PATH_PLACEHOLDER,
        )

    path = tmp_path / "team.yaml"
    compiler.Compiler().compile(team, str(path))
    spec, platform = yaml.safe_load_all(path.read_text())
    train = spec["root"]["dag"]["tasks"]["train-pytorchjob"]["inputs"]["parameters"]
    assert train["workspace_path"]["runtimeValue"]["constant"] == dsl.WORKSPACE_PATH_PLACEHOLDER
    assert platform["platforms"]["kubernetes"]["pipelineConfig"]["workspace"]["size"] == "20Gi"
    passthroughs = spec["components"]["comp-train-pytorchjob"]["taskConfigPassthroughs"]
    assert {"field": "KUBERNETES_VOLUMES", "applyToTask": True} in passthroughs
