"""The data components run as KFP runs them: through kfp.local's SubprocessRunner."""

import json
import os
import pathlib

import kfp.local
import pyarrow.parquet as pq
import pytest
from kfp import dsl

from mlworkloads.components import fit_preprocessor, ingest_table, split_dataset

CSV = "carrier,arr_delay,distance\n" + "".join(
    f"{c},{d},{500 + 10 * i}\n" for i, (c, d) in enumerate([("UA", 20), ("AA", -5), ("B6", 3), ("DL", 45)] * 10)
)


@pytest.fixture
def local_root(tmp_path):
    root = tmp_path / "root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    return root


def _files_under(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def _output(root, task, name):
    (path,) = [os.path.join(root, f) for f in _files_under(root) if f.endswith(f"{task}/{name}")]
    return path


def test_data_components_chain_through_kfp_local(tmp_path, local_root):
    source = tmp_path / "flights.csv"
    source.write_text(CSV)

    @dsl.pipeline
    def chain(source_uri: str):
        ingest = ingest_table(
            source_uri=source_uri,
            label_column="late",
            derived_columns={"late": "arr_delay > 15"},
            drop_columns=["arr_delay"],
        )
        split = split_dataset(
            dataset=ingest.outputs["dataset"],
            label_column="late",
            validation_fraction=0.25,
            test_fraction=0.25,
        )
        fit_preprocessor(
            train=split.outputs["train"],
            validation=split.outputs["validation"],
            test=split.outputs["test"],
            label_column="late",
        )

    chain(source_uri=str(source))
    assert "| True | 20 | 50.0% |" in pathlib.Path(_output(local_root, "ingest-table", "report")).read_text()
    rows = [pq.read_metadata(_output(local_root, "split-dataset", n)).num_rows for n in ("train", "validation", "test")]
    assert rows == [20, 10, 10]
    spec = json.loads(pathlib.Path(_output(local_root, "fit-preprocessor", "preprocessor")).read_text())
    assert spec["label"] == {"name": "late", "classes": [False, True]}
    features = pq.read_table(_output(local_root, "fit-preprocessor", "test_features"))
    assert features.num_rows == 10 and "__label__" in features.column_names


def test_a_failing_ingest_names_the_problem_and_leaves_no_artifact(tmp_path, local_root, capfd):
    source = tmp_path / "f.csv"
    source.write_text(CSV)
    with pytest.raises(RuntimeError, match="ingest-table"):
        ingest_table(source_uri=str(source), label_column="late")
    assert "label_column 'late' is not in the table" in capfd.readouterr().out
    assert not [f for f in _files_under(local_root) if f.endswith(("dataset", "report"))]


def test_split_refusing_a_single_class_writes_no_split(tmp_path, local_root, capfd):
    source = tmp_path / "f.csv"
    source.write_text("x,y\n" + "".join(f"{i},1\n" for i in range(20)))

    @dsl.pipeline
    def chain(source_uri: str):
        ingest = ingest_table(source_uri=source_uri, label_column="y")
        split_dataset(dataset=ingest.outputs["dataset"], label_column="y")

    with pytest.raises(RuntimeError, match="split-dataset"):
        chain(source_uri=str(source))
    assert "has a single class [1]" in capfd.readouterr().out
    assert not [f for f in _files_under(local_root) if f.endswith(("train", "validation", "test"))]
