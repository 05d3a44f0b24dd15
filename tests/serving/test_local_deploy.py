"""The local deploy backend: the model served here, smoke-tested, the cluster's manifest returned."""

import pyarrow.parquet as pq

from mlworkloads.images import PREDICTOR_IMAGE
from mlworkloads.serving.inferenceservice import ServiceSettings
from mlworkloads.serving.local_server import deploy_local
from mlworkloads.training.evaluation import evaluate
from mlworkloads.training.export import load


def test_a_logger_the_local_predictor_cannot_honour_is_said_not_dropped(sample_model, sample_features):
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 16)
    expected = evaluate(load(sample_model), rows).predictions
    settings = ServiceSettings(
        name="flights", image=PREDICTOR_IMAGE, model_uri=sample_model, logger_url="http://broker.team/"
    )
    said = []
    outcome = deploy_local(settings, sample_model, rows, expected, echo=said.append)
    assert outcome["status"]["ready"] and outcome["status"]["smoke_test"]["rows"] == 16
    assert outcome["manifest"]["spec"]["predictor"]["logger"]["url"] == "http://broker.team/"
    assert "the local predictor logs nothing" in outcome["status"]["note"]
    assert any("logger_url=http://broker.team/ takes effect on KServe only" in line for line in said)
