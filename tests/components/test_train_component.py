"""train_pytorchjob as KFP runs it (kfp.local), with both backends; the PyTorchJob on the REAL test cluster."""

import json
import os
import pathlib

import kfp.local
import pytest
from kfp import dsl

from mlworkloads.components import fit_preprocessor, ingest_table, split_dataset, train_pytorchjob
from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI


@dsl.pipeline
def small_training(backend: str, namespace: str = ""):
    ingest = ingest_table(source_uri=FLIGHTS_URI, max_rows=20000, **FLIGHTS_TASK)
    split = split_dataset(dataset=ingest.outputs["dataset"], label_column="late")
    prep = fit_preprocessor(
        train=split.outputs["train"],
        validation=split.outputs["validation"],
        test=split.outputs["test"],
        label_column="late",
    )
    train_pytorchjob(
        train_features=prep.outputs["train_features"],
        validation_features=prep.outputs["validation_features"],
        preprocessor=prep.outputs["preprocessor"],
        backend=backend,
        epochs=2,
        hidden_sizes=[32, 16],
        num_workers=2,
        nproc_per_node=1,
        namespace=namespace,
    )


def _outputs(root, name):
    return [os.path.join(d, name) for d, dirs, files in os.walk(root) if name in files + dirs]


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["local", pytest.param("pytorchjob", marks=pytest.mark.cluster)])
def test_train_component_produces_model_metrics_and_curves(backend, tmp_path, request):
    namespace = request.getfixturevalue("cluster_namespace") if backend == "pytorchjob" else ""
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    small_training(backend=backend, namespace=namespace)
    (model_dir,) = [p for p in _outputs(tmp_path, "model") if p.endswith("train-pytorchjob/model")]
    assert sorted(os.listdir(model_dir)) == ["metrics.json", "model.json", "model.pt", "preprocessor.json"]
    # Locally nproc_per_node processes; on the cluster num_workers replicas x nproc_per_node.
    expected_world = 1 if backend == "local" else 2
    assert json.loads(pathlib.Path(model_dir, "model.json").read_text())["world_size"] == expected_world
    (curves,) = _outputs(tmp_path, "curves")
    assert "data:image/png;base64," in pathlib.Path(curves).read_text()
    if backend == "pytorchjob":
        cluster = request.getfixturevalue("kube_cluster")
        created = [e for e in cluster.plane.audit_events() if e["verb"] == "create"
                   and e.get("objectRef", {}).get("resource") == "pytorchjobs"
                   and e["objectRef"].get("namespace") == namespace]  # fmt: skip
        assert len(created) == 1 and created[0]["responseStatus"]["code"] == 201
        assert cluster.objects("pytorchjobs", namespace) == []
