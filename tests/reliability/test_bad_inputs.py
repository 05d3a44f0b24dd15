"""Bad input over every public entry point: each is refused with an error that names the problem."""

import json
import pathlib
import shutil

import pytest
from kserve.errors import InvalidInput
from typer.testing import CliRunner

from mlworkloads.cli import app
from mlworkloads.data.errors import DataError
from mlworkloads.data.preprocessor import Preprocessor
from mlworkloads.data.tables import read_table
from mlworkloads.serving import payload
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import ConfigError, ModelDirError
from mlworkloads.training.export import load


def _file(tmp, name, content):
    path = tmp / name
    path.write_bytes(content)
    return str(path)


def _cli(*args):
    result = CliRunner().invoke(app, list(args))
    if result.exit_code == 2 and "error:" in result.output:
        raise ValueError(result.output)
    return result


def cases(tmp: pathlib.Path, model_dir: str):
    spec = json.loads(pathlib.Path(model_dir, "preprocessor.json").read_text())
    preprocessor = Preprocessor.from_dict(spec)
    instance = {name: 1 for name in preprocessor.feature_columns}
    for c in preprocessor.categorical:
        instance[c["name"]] = "UA"
    missing_file = tmp / "no-preprocessor"
    shutil.copytree(model_dir, missing_file)
    (missing_file / "preprocessor.json").unlink()
    extra_file = tmp / "extra"
    shutil.copytree(model_dir, extra_file)
    (extra_file / "notes.txt").write_text("hi")
    return [
        ("ingest: empty file", lambda: read_table(_file(tmp, "e.csv", b"")), DataError, "is empty"),
        (
            "ingest: binary garbage",
            lambda: read_table(_file(tmp, "g.csv", bytes(range(256)) * 4)),
            DataError,
            "cannot parse",
        ),
        (
            "ingest: wrong delimiter",
            lambda: read_table(_file(tmp, "s.csv", b"a;b\n1;2\n")),
            DataError,
            "looks delimited by ';'",
        ),
        (
            "ingest: non-UTF-8",
            lambda: read_table(_file(tmp, "l.csv", "a\n\xe9\n".encode("latin-1"))),
            DataError,
            "not UTF-8",
        ),
        (
            "ingest: duplicated header",
            lambda: read_table(_file(tmp, "d.csv", b"a,a\n1,2\n")),
            DataError,
            "duplicated column names",
        ),
        ("ingest: header only", lambda: read_table(_file(tmp, "h.csv", b"a,b\n")), DataError, "no data rows"),
        (
            "preprocessor: newer version",
            lambda: Preprocessor.from_dict({**spec, "version": 99}),
            DataError,
            "newer mlworkloads",
        ),
        (
            "preprocessor: tampered statistics",
            lambda: Preprocessor.from_dict({**spec, "numeric": [{**spec["numeric"][0], "std": -1}]}),
            DataError,
            "expected a positive number",
        ),
        ("preprocessor: not JSON", lambda: Preprocessor.from_json("{]"), DataError, "not valid JSON"),
        ("model dir: missing file", lambda: load(str(missing_file)), ModelDirError, "lacks ['preprocessor.json']"),
        ("model dir: extra file", lambda: load(str(extra_file)), ModelDirError, "unexpected files ['notes.txt']"),
        ("model dir: absent", lambda: load(str(tmp / "nowhere")), ModelDirError, "does not exist"),
        (
            "trainer: learning rate",
            lambda: TrainConfig(
                train_uri="t", validation_uri="v", preprocessor_uri="p", output_uri="o", learning_rate=-1
            ),
            ConfigError,
            "learning_rate=-1",
        ),
        (
            "trainer: unknown setting",
            lambda: TrainConfig.from_json('{"train_uri": "t", "lr": 1}'),
            ConfigError,
            "unknown training setting(s) ['lr']",
        ),
        ("cli: unknown pipeline", lambda: _cli("run", "nope"), ValueError, "unknown pipeline 'nope'"),
        (
            "cli: untyped parameter",
            lambda: _cli("run", "data_pipeline", "-p", "max_rows=ten"),
            ValueError,
            "'max_rows' is Integer",
        ),
        (
            "cli: bad cron",
            lambda: _cli("schedule", "data_pipeline", "--cron", "nightly", "--host", "http://127.0.0.1:9"),
            ValueError,
            "expected 5 crontab fields",
        ),
        (
            "predictor: wrong type",
            lambda: preprocessor.transform(
                payload.v1_columns({"instances": [{**instance, "distance": "far"}]}, preprocessor, 10)
            ),
            DataError,
            "'distance'",
        ),
        (
            "predictor: infinity",
            lambda: payload.v1_columns({"instances": [{**instance, "distance": float("inf")}]}, preprocessor, 10),
            InvalidInput,
            "must be finite",
        ),
        (
            "predictor: a number over 64 bits",
            lambda: payload.v1_columns({"instances": [instance, {**instance, "distance": 2**70}]}, preprocessor, 10),
            InvalidInput,
            "'distance' holds a whole number too large",
        ),
        (
            "predictor: nested garbage",
            lambda: payload.v1_columns({"instances": [{**instance, "carrier": {"a": [1]}}]}, preprocessor, 10),
            InvalidInput,
            "'carrier'",
        ),
        (
            "predictor: not a list",
            lambda: payload.v1_columns({"instances": {"a": 1}}, preprocessor, 10),
            InvalidInput,
            "non-empty list",
        ),
        (
            "predictor: over max batch",
            lambda: payload.v1_columns({"instances": [instance] * 11}, preprocessor, 10),
            InvalidInput,
            "maximum batch is 10",
        ),
        (
            "predictor: missing feature",
            lambda: payload.v1_columns({"instances": [{}]}, preprocessor, 10),
            InvalidInput,
            "is missing feature",
        ),
    ]


CASE_NAMES = [
    "ingest: empty file",
    "ingest: binary garbage",
    "ingest: wrong delimiter",
    "ingest: non-UTF-8",
    "ingest: duplicated header",
    "ingest: header only",
    "preprocessor: newer version",
    "preprocessor: tampered statistics",
    "preprocessor: not JSON",
    "model dir: missing file",
    "model dir: extra file",
    "model dir: absent",
    "trainer: learning rate",
    "trainer: unknown setting",
    "cli: unknown pipeline",
    "cli: untyped parameter",
    "cli: bad cron",
    "predictor: wrong type",
    "predictor: infinity",
    "predictor: a number over 64 bits",
    "predictor: nested garbage",
    "predictor: not a list",
    "predictor: over max batch",
    "predictor: missing feature",
]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, sample_model):
    return {name: (attempt, error, message) for name, attempt, error, message in cases(
        tmp_path_factory.mktemp("bad-inputs"), sample_model)}  # fmt: skip


def test_the_table_lists_every_case(bad_inputs):
    assert sorted(bad_inputs) == sorted(CASE_NAMES) and len(CASE_NAMES) >= 20


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_refused_cleanly_naming_the_problem(bad_inputs, name):
    attempt, error, message = bad_inputs[name]
    with pytest.raises(error) as refused:
        attempt()
    assert message in str(refused.value)
