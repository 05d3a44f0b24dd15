"""While a model is updated (promoted, or rolled back), a client polling the endpoint sees no failure."""

import threading
import time

import httpx
import pyarrow.parquet as pq
import pytest

from mlworkloads.images import PREDICTOR_IMAGE
from mlworkloads.serving import deploy
from mlworkloads.serving.inferenceservice import ServiceSettings
from mlworkloads.training.evaluation import evaluate
from mlworkloads.training.export import load


def _deploy(model_dir, rows, expected):
    model = load(model_dir)
    service = ServiceSettings(
        name="flights", image=PREDICTOR_IMAGE, model_uri=model_dir, namespace="default", canary_traffic_percent=20
    )
    deploy.deploy_kserve(
        service,
        rows,
        expected,
        model.preprocessor.feature_columns,
        model.preprocessor.classes,
        ready_timeout=60,
        poll_interval=1,
        echo=lambda _: None,
    )


@pytest.mark.e2e
def test_a_polling_client_sees_no_failed_request_through_promotion_and_rollback(
    sample_model, other_model, sample_features, emulated_cluster
):
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 100)
    _deploy(sample_model, rows, evaluate(load(sample_model), rows).predictions)
    (service,) = emulated_cluster.jobs("inferenceservices")
    url = f"{service['status']['url']}/v1/models/flights:predict"
    columns = load(sample_model).preprocessor.feature_columns
    body = {"instances": [{c: rows[c][0].as_py() for c in columns}]}
    results, stop = [], threading.Event()

    def poll():
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    results.append(client.post(url, json=body).status_code)
                except httpx.HTTPError as err:
                    results.append(repr(err))
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        _deploy(other_model, rows, evaluate(load(other_model), rows).predictions)  # canary, then promoted
        with pytest.raises(deploy.DeployFailed):  # a canary that answers wrongly: rolled back
            _deploy(sample_model, rows, evaluate(load(other_model), rows).predictions)
    finally:
        stop.set()
        poller.join()
    failures = [r for r in results if r != 200]
    print(f"{len(results)} polls during promotion and rollback, {len(failures)} failed")
    assert len(results) > 50 and not failures, failures[:5]
