"""training/job_launch.py: the one launcher's contract with a training command, run here under torchrun."""

import os

import pytest

from mlworkloads.training.errors import ConfigError
from mlworkloads.training.job_launch import (
    CHECKPOINT_DIR_ENV,
    MODEL_DIR_ENV,
    Inputs,
    input_env,
    launch_job,
    launch_step,
)

# Rank 0 writes what the environment tells it, nested files included; every rank sees its inputs.
WRITER = """
import json, os, pathlib, sys
rank = int(os.environ["RANK"])
data = pathlib.Path(os.environ["MLWORKLOADS_INPUT_TRAIN_DATA"]).read_text()
sys.stdout.write(f"rank {rank} read {data}\\n")  # one write: the ranks share the pipe
sys.stdout.flush()
if rank == 0:
    out = pathlib.Path(os.environ["MLWORKLOADS_MODEL_DIR"])
    (out / "tokenizer").mkdir(parents=True)
    (out / "tokenizer" / "vocab.txt").write_text("a b c")
    (out / "weights.bin").write_bytes(b"w")
    (out / "metrics.json").write_text(json.dumps(METRICS))
    pathlib.Path(os.environ["MLWORKLOADS_CHECKPOINT_DIR"]).mkdir(parents=True, exist_ok=True)
"""


def _writer(metrics) -> list[str]:
    return ["python", "-c", WRITER.replace("METRICS", repr(metrics))]


def _data(tmp_path) -> Inputs:
    (tmp_path / "data.txt").write_text("rows")
    return Inputs(str(tmp_path / "data.txt"), str(tmp_path / "data.txt"))


def test_input_names_become_variables():
    assert input_env("train_data") == "MLWORKLOADS_INPUT_TRAIN_DATA"
    assert input_env("base-model") == "MLWORKLOADS_INPUT_BASE_MODEL"


def test_every_file_the_job_writes_is_collected_and_its_metrics_read(tmp_path):
    lines = []
    result = launch_job(
        command=_writer({"accuracy": 0.93}),
        model_dir=str(tmp_path / "out" / "model"),
        inputs={"train_data": _data(tmp_path)},
        backend="local",
        nproc_per_node=2,
        echo=lines.append,
    )
    assert result.job_kind == "local"
    assert result.files == ["metrics.json", "tokenizer/vocab.txt", "weights.bin"]
    assert (tmp_path / "out" / "model" / "tokenizer" / "vocab.txt").read_text() == "a b c"
    assert result.metrics(str(tmp_path / "out" / "model")) == {"accuracy": 0.93}
    assert sorted(line.strip() for line in lines if line.startswith("rank ")) == [
        "rank 0 read rows",
        "rank 1 read rows",
    ]


def test_the_step_records_the_numeric_metrics_and_skips_unwired_inputs(tmp_path):
    result = launch_step(
        command=_writer({"accuracy": 0.5, "epochs": 3, "note": "text", "ok": True, "nested": {"a": 1}}),
        args=[],
        inputs={"train_data": _data(tmp_path), "base_model": None},
        model_dir=str(tmp_path / "model"),
        model_uri=str(tmp_path / "model"),
        job={},
        passed_through={},
        backend="local",
        echo=lambda _: None,
    )
    assert result.metrics == {"accuracy": 0.5, "epochs": 3.0}
    assert result.metadata["job_kind"] == "local" and result.metadata["accuracy"] == 0.5


def test_a_job_that_writes_no_model_fails_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=rf"wrote no model to .*\${MODEL_DIR_ENV}"):
        launch_job(command=["python", "-c", "print('saved nothing')"], model_dir=str(tmp_path / "m"), backend="local",
                   echo=lambda _: None)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "must hold a JSON object, not list")],
    ids=["not-json", "not-object"],
)
def test_a_bad_metrics_file_is_refused_naming_it(tmp_path, text, message):
    script = f"import os, pathlib; p = pathlib.Path(os.environ['{MODEL_DIR_ENV}']); p.mkdir(parents=True); "
    script += f"(p / 'metrics.json').write_text({text!r})"
    result = launch_job(command=["python", "-c", script], model_dir=str(tmp_path / "m"), backend="local",
                        echo=lambda _: None)  # fmt: skip
    with pytest.raises(ConfigError, match=f"metrics.json {message}"):
        result.metrics(str(tmp_path / "m"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"backend": "slurm"},
            "backend='slurm': expected one of ['auto', 'local', 'pytorchjob', 'xgboostjob', 'trainjob']",
        ),
        ({"bridge": "nfs"}, "bridge='nfs': expected one of ['artifacts', 'volume', 'workspace']"),
        ({"command": ["torchrun", "train.py"]}, "starts with torchrun"),
        ({"framework": "jax"}, "framework='jax': expected one of ['torch', 'xgboost']"),
        (
            {"backend": "pytorchjob", "framework": "xgboost"},
            "job_kind='pytorchjob' does not run xgboost training: use 'trainjob', 'auto' or 'xgboostjob'",
        ),
    ],
    ids=["backend", "bridge", "torchrun", "framework", "kind-of-the-other-framework"],
)
def test_bad_settings_are_refused_before_anything_runs(tmp_path, options, message):
    arguments = {"command": ["python", "train.py"], "model_dir": str(tmp_path / "m"), "backend": "local"} | options
    with pytest.raises(ConfigError) as err:
        launch_job(**arguments, echo=lambda _: None)
    assert message in str(err.value)


def test_a_model_directory_that_is_not_empty_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "old.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is not empty"):
        launch_job(command=_writer({}), model_dir=str(tmp_path / "m"), backend="local", echo=lambda _: None)


def test_the_checkpoint_directory_is_named_to_the_job(tmp_path):
    script = f"import os; print('ckpt', os.environ['{CHECKPOINT_DIR_ENV}']); "
    script += f"import pathlib; p = pathlib.Path(os.environ['{MODEL_DIR_ENV}']); p.mkdir(parents=True); "
    script += "(p / 'm.bin').write_bytes(b'1')"
    lines = []
    launch_job(command=["python", "-c", script], model_dir=str(tmp_path / "out" / "m"), backend="local",
               echo=lines.append)  # fmt: skip
    (line,) = [line for line in lines if line.startswith("ckpt ")]
    assert line.split()[1] == os.path.join(str(tmp_path / "out"), "training-work", "checkpoints")


TEAM_XGBOOST_SCRIPT = """
import json, os
import numpy as np
import xgboost as xgb
from mlworkloads.training.xgboost_world import communicator, world

place = world()
with communicator(place):
    from xgboost import collective
    rng = np.random.default_rng(collective.get_rank())
    x = rng.normal(size=(2000, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist"}, xgb.DMatrix(x, y), 10)
    if collective.get_rank() == 0:
        out = os.environ["MLWORKLOADS_MODEL_DIR"]
        os.makedirs(out, exist_ok=True)
        booster.save_model(os.path.join(out, "model.json"))
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump({"workers": collective.get_world_size()}, f)
"""


def test_a_teams_own_xgboost_script_runs_on_two_workers(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TEAM_XGBOOST_SCRIPT)
    result = launch_job(
        command=["python", str(script)],
        model_dir=str(tmp_path / "model"),
        backend="local",
        framework="xgboost",
        nproc_per_node=2,
        echo=lambda _: None,
    )
    assert result.files == ["metrics.json", "model.json"]
    assert result.metrics(str(tmp_path / "model")) == {"workers": 2}
