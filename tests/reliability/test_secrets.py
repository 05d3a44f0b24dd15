"""No secret value reaches compiled YAML, manifests, logs or artifacts; nothing unpickles user data."""

import io
import json
import pathlib

import pyarrow.parquet as pq
import pytest

from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
from mlworkloads.data.ingest import IngestConfig, ingest
from mlworkloads.local_run import run_locally
from mlworkloads.pipelines import PIPELINES

REPO = pathlib.Path(__file__).parents[2]


@pytest.mark.e2e
def test_a_run_that_used_credentials_shows_them_nowhere(s3_bucket, tmp_path, capfd):
    import os

    import s3fs

    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    table = ingest(IngestConfig(source_uri=FLIGHTS_URI, max_rows=3000, **FLIGHTS_TASK))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    s3fs.S3FileSystem().pipe(f"{s3_bucket}/flights.parquet", buffer.getvalue())
    root = run_locally(
        PIPELINES["data_pipeline"],
        {
            "source_uri": f"s3://{s3_bucket}/flights.parquet",
            "derived_columns": {},
            "drop_columns": [],
            "row_filter": "",
        },
        str(tmp_path),
    )
    logs = capfd.readouterr()
    run_log = (pathlib.Path(root) / "run.log").read_text()
    assert "Task 'fit-preprocessor' finished with status SUCCESS" in run_log  # it ran, and was logged
    places = {"logs": logs.out + logs.err}
    for path in pathlib.Path(root).rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for path in (REPO / "compiled").rglob("*.yaml"):
        places[str(path)] = path.read_text()
    leaks = [where for where, text in places.items() if secret in text]
    assert not leaks


def test_compiled_pipelines_carry_no_credentials():
    """The artifact store's keys are read at run time from the Secret KFP's launcher reads, and
    reach the replicas as secretKeyRef: nothing of them is compiled in."""
    for path in (REPO / "compiled").rglob("*.yaml"):
        spec = path.read_text().lower()
        assert "aws_secret_access_key" not in spec and "secretkey:" not in spec, path


def test_nothing_loads_pickles():
    offenders = []
    for folder in ("data", "training", "serving", "components", "pipelines", "mlworkloads"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            if (
                "import pickle" in text
                or "weights_only=False" in text
                or "torch.load(" in text
                and "weights_only=True" not in text
            ):
                offenders.append(str(path))
    assert not offenders


def test_the_images_run_as_a_non_root_user():
    for dockerfile in (REPO / "docker").glob("*.Dockerfile"):
        lines = [line.strip() for line in dockerfile.read_text().splitlines()]
        users = [line for line in lines if line.startswith("USER ")]
        assert users and users[-1] != "USER root", dockerfile


def test_the_inferenceservice_runs_non_root_without_privilege_escalation():
    from mlworkloads.images import PREDICTOR_IMAGE
    from mlworkloads.serving.inferenceservice import ServiceSettings, as_dict, build

    manifest = as_dict(build(ServiceSettings(name="m", image=PREDICTOR_IMAGE, model_uri="s3://b/m"), "ns"))
    context = manifest["spec"]["predictor"]["containers"][0]["securityContext"]
    assert context == {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000}
    assert json.dumps(manifest).count("s3://b/m") == 2  # the storage URI, never a credential
