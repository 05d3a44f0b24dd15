"""Shared fixtures: real servers on loopback (moto's S3, http.server) and small real tables."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import sys
import threading

import pyarrow as pa
import pytest
from support.waiting import wait_until

from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
from mlworkloads.data.ingest import IngestConfig, ingest


def pytest_collection_modifyitems(items):
    # A test is a `cluster` test exactly when it uses the real cluster, so `-m "not cluster"`
    # skips those and only those.
    for item in items:
        if "kube_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session):
    """Builds the test cluster before the first test when any selected test uses it.

    A cold build is minutes of `go build` (bounded on its own, build.GO_COMMAND_LIMIT); inside
    the first cluster test it would count against that test's limit and read as a hang.
    """
    log = lambda line: print(line, file=sys.__stderr__, flush=True)  # noqa: E731
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if any(item.get_closest_marker("cluster") for item in session.items):
        from support.cluster.build import INSTALLED, build

        build(log=log, only=INSTALLED)
    # The same for the other programs the tests build: Prometheus from its module, and the
    # MLflow server's virtualenv (a minute of pip), each only when a selected test needs it.
    if "prometheus_binary" in wanted:
        from support.cluster.build import build

        build(log=log, only=("prometheus",))
    if "mlflow_uri" in wanted:
        from support.mlflow_server import server_python

        log(f"MLflow server: {server_python()}")


# The hang guard's hooks (support/hang_guard.py): pytest finds them here by name.
from support.hang_guard import (  # noqa: E402, F401
    pytest_configure,
    pytest_timeout_cancel_timer,
    pytest_timeout_set_timer,
)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1, with credentials in the environment for s3fs."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing-secret",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def secured_s3(tmp_path_factory):
    """An S3 server (moto, in its own process) that ENFORCES credentials, on a random loopback port.

    Two IAM users, each allowed only its own bucket: `kfp` owns `mlpipeline` (KFP's artifact
    store) and `team` owns `team-data` (a team's own data). Wrong keys get InvalidAccessKeyId;
    the other user's bucket gets AccessDenied. Yields {"endpoint", "kfp": (key, secret), "team": ...}.
    """
    import json
    import subprocess
    import sys

    import boto3

    port = free_port()
    # moto lets the first N requests through unauthenticated: exactly the IAM calls below.
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "6"}
    log = open(tmp_path_factory.mktemp("secured-s3") / "moto.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited with {server.returncode}; see {log.name}")
        return _accepts(port)

    wait_until(listening, what=f"moto's S3 server on port {port}", timeout=30, interval=0.1)
    iam = boto3.client(
        "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    users, owned = {}, {"kfp": "mlpipeline", "team": "team-data"}
    for user, bucket in owned.items():  # the six unauthenticated calls
        iam.create_user(UserName=user)
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}*"]}],
        }
        iam.put_user_policy(UserName=user, PolicyName="own-bucket", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        users[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    for user, bucket in owned.items():
        keys = {"aws_access_key_id": users[user][0], "aws_secret_access_key": users[user][1]}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(Bucket=bucket)
    yield {"endpoint": endpoint, **users}
    server.terminate()
    server.wait(timeout=10)
    log.close()


@pytest.fixture(autouse=True)
def _fresh_artifact_store():
    """Each test resolves KFP's artifact store anew (it is read once per process)."""
    from mlworkloads import artifact_store

    artifact_store.current.cache_clear()
    yield
    artifact_store.current.cache_clear()


@pytest.fixture(scope="session")
def mlflow_uri(s3_endpoint, tmp_path_factory):
    """A REAL MLflow tracking server (support/mlflow_server.py): SQLite, artifacts in moto's S3."""
    import s3fs
    from support.mlflow_server import mlflow_server

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    fs.mkdir("mlflow-artifacts")
    s3fs.S3FileSystem.clear_instance_cache()
    with mlflow_server(tmp_path_factory.mktemp("mlflow"), free_port(), s3_endpoint, "mlflow-artifacts") as uri:
        yield uri


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto server; yields its name."""
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    name = f"bucket-{os.urandom(4).hex()}"
    fs.mkdir(name)
    s3fs.S3FileSystem.clear_instance_cache()
    yield name


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """Serves `tmp_path/www` over http://127.0.0.1; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@functools.lru_cache(maxsize=1)
def _flights() -> pa.Table:
    return ingest(IngestConfig(source_uri=FLIGHTS_URI, **FLIGHTS_TASK))


@pytest.fixture(scope="session")
def flights_table() -> pa.Table:
    """The real flights table, ingested with the demo task (327,346 rows)."""
    return _flights()


@pytest.fixture(scope="session")
def flights_sample(flights_table) -> pa.Table:
    """A fixed random sample of 6,000 real flights, for quick tests."""
    import numpy as np

    rows = np.sort(np.random.default_rng(7).choice(flights_table.num_rows, 6000, replace=False))
    return flights_table.take(pa.array(rows))


def prepare_features(table: pa.Table, directory, label: str = "late") -> dict[str, str]:
    """Runs split and preprocess on `table`; returns the paths the trainer reads."""
    import pyarrow.parquet as pq

    from mlworkloads.data import steps
    from mlworkloads.data.preprocessor import PreprocessorOptions

    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / "raw.parquet"
    pq.write_table(table, raw)
    splits = {name: str(directory / f"{name}.parquet") for name in ("train", "validation", "test")}
    steps.split_step(str(raw), splits, label, 0.1, 0.1, seed=0, stratify=True)
    features = {name: str(directory / f"{name}_features.parquet") for name in splits}
    steps.preprocess_step(
        splits,
        PreprocessorOptions(label_column=label, categorical_columns=["flight"]),
        str(directory / "preprocessor.json"),
        features,
    )
    return {
        **{f"{k}_raw": v for k, v in splits.items()},
        **features,
        "preprocessor": str(directory / "preprocessor.json"),
    }


@pytest.fixture(scope="session")
def flights_features(flights_table, tmp_path_factory) -> dict[str, str]:
    """Preprocessed features of the whole real flights table."""
    return prepare_features(flights_table, tmp_path_factory.mktemp("flights-full"))


@pytest.fixture(scope="session")
def sample_features(flights_table, tmp_path_factory) -> dict[str, str]:
    """Preprocessed features of a fixed 40,000-row random sample of the flights table."""
    import numpy as np

    rows = np.sort(np.random.default_rng(11).choice(flights_table.num_rows, 40_000, replace=False))
    return prepare_features(flights_table.take(pa.array(rows)), tmp_path_factory.mktemp("flights-sample"))


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory):
    """The REAL test cluster (support/cluster/): upstream's control plane and training operator,
    built from their modules on first use, with our pod runner as its one node."""
    from support.cluster.cluster import TestCluster

    with TestCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_namespace(kube_cluster, monkeypatch, request):
    """A fresh namespace of the real cluster for one test, with KUBECONFIG set to cluster-admin.

    The name is kept to 27 characters: KServe builds the predictor's host label as
    `<isvc>-<component>-predictor-<namespace>` and refuses one over 63 characters.
    """
    import re
    import uuid

    stem = re.sub("[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:20].strip("-")
    name = kube_cluster.create_namespace(f"{stem}-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def deployer(kube_cluster, cluster_namespace, tmp_path):
    """The deploy step's identity in a fresh namespace: `pipeline-runner` bound to the shipped Roles."""
    from support.cluster.deployer import RUNNER, Deployer

    from mlworkloads.rbac import rbac_manifests

    kube_cluster.kubectl("-n", cluster_namespace, "create", "serviceaccount", RUNNER)
    kube_cluster.kubectl("apply", "-f", "-", input=rbac_manifests(cluster_namespace, RUNNER, cluster_namespace))
    return Deployer(kube_cluster, cluster_namespace, tmp_path)


def train_model(features: dict[str, str], out, **settings) -> str:
    """Trains in this process on prepared `features`; returns the model directory."""
    from mlworkloads.training.config import TrainConfig
    from mlworkloads.training.trainer import run

    run(
        TrainConfig(
            train_uri=features["train"],
            validation_uri=features["validation"],
            preprocessor_uri=features["preprocessor"],
            output_uri=str(out),
            **settings,
        )
    )
    return str(out)


@pytest.fixture(scope="session")
def sample_model(sample_features, tmp_path_factory) -> str:
    """A model trained (2 epochs) on the flights sample."""
    return train_model(
        sample_features, tmp_path_factory.mktemp("sample-model") / "model", epochs=2, hidden_sizes=[64, 32]
    )


@pytest.fixture(scope="session")
def boosted_model(sample_features, tmp_path_factory) -> str:
    """Gradient-boosted trees (60 rounds, one worker, in this process) on the flights sample."""
    from mlworkloads.training.boosting import run
    from mlworkloads.training.boosting_config import BoostingConfig

    out = tmp_path_factory.mktemp("boosted-model") / "model"
    run(
        BoostingConfig(
            train_uri=sample_features["train"],
            validation_uri=sample_features["validation"],
            preprocessor_uri=sample_features["preprocessor"],
            output_uri=str(out),
            **BOOSTED_SETTINGS,
        )
    )
    return str(out)


#: What `boosted_model` is trained with (tests of the trees compare against it).
BOOSTED_SETTINGS = {"num_boost_round": 60, "early_stopping_rounds": 0, "checkpoint_interval": 20}


@pytest.fixture(scope="session")
def _predictor(sample_model):
    from mlworkloads.serving.local_server import local_predictor

    grpc_port = free_port()
    with local_predictor(sample_model, "flights", max_batch_size=512, grpc_port=grpc_port) as base:
        yield base, f"127.0.0.1:{grpc_port}"


@pytest.fixture(scope="session")
def predictor_url(_predictor):
    """The real KServe predictor serving `sample_model` as "flights" on 127.0.0.1 (its HTTP base URL)."""
    return _predictor[0]


@pytest.fixture(scope="session")
def predictor_grpc(_predictor):
    """The same predictor's gRPC address (host:port)."""
    return _predictor[1]


@pytest.fixture(scope="session")
def other_model(sample_features, tmp_path_factory) -> str:
    """A second model (another seed, another shape): a challenger whose predictions differ."""
    return train_model(
        sample_features, tmp_path_factory.mktemp("other-model") / "model", epochs=1, hidden_sizes=[16], seed=42
    )


@pytest.fixture
def emulated_kfp(monkeypatch):
    """An EMULATED KFP v2beta1 API on 127.0.0.1 (support/emulated_kfp.py), with KF_PIPELINES_ENDPOINT set."""
    from support.emulated_kfp import EmulatedKfp

    with EmulatedKfp() as api:
        monkeypatch.setenv("KF_PIPELINES_ENDPOINT", api.url)
        yield api
