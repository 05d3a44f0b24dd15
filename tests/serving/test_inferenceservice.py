"""The InferenceService objects the deployer writes, as objects (KServe v0.20's shapes).

`spec.canary` is a list of CanarySpec with a named predictor and fixed replicas
(pkg/apis/serving/v1beta1/inference_service.go); promotion retargets `predictor.name` and drops
the entry (canary_controller). Whether KServe admits them is asked of its real webhook:
tests/cluster/test_kserve_admission.py.
"""

import pytest

from mlworkloads.serving.errors import ServiceConfigError
from mlworkloads.serving.inferenceservice import (
    ServiceSettings,
    as_dict,
    build,
    canary_update,
    predictor_name,
    promoted,
)


def _settings(model_uri, mode="Standard", **extra):
    return ServiceSettings(
        name="flights",
        image="registry.example.com/mlworkloads-predictor:1",
        model_uri=model_uri,
        deployment_mode=mode,
        canary_traffic_percent=20,
        min_replicas=2,
        max_replicas=5,
        scale_metric="cpu" if mode == "Standard" else "concurrency",
        scale_target=70,
        **extra,
    )


def _live(model_uri="s3://models/v1", mode="Standard"):
    service = as_dict(build(_settings(model_uri, mode), "team-a"))
    service["metadata"].update(generation=1, resourceVersion="7")
    return service


def test_a_standard_mode_update_puts_one_named_fixed_replica_canary_in_a_list():
    live = _live()
    updated = canary_update(live, _settings("s3://models/v2"), "team-a")
    (canary,) = updated["spec"]["canary"]
    assert canary["trafficPercent"] == 20
    assert canary["predictor"]["name"] == predictor_name("s3://models/v2")
    assert canary["predictor"]["name"] != live["spec"]["predictor"]["name"]
    for refused in ("maxReplicas", "minReplicas", "scaleMetric", "scaleTarget"):
        assert refused not in canary["predictor"]
    assert updated["spec"]["predictor"] == live["spec"]["predictor"]  # the stable one keeps serving
    env = canary["predictor"]["containers"][0]["env"]
    assert {"name": "STORAGE_URI", "value": "s3://models/v2"} in env


def test_promotion_gives_the_stable_predictor_the_canarys_model_under_its_own_name_and_drops_the_entry():
    """The stable name stays, so its Service and the Ingress stay and its Deployment rolls."""
    live = _live()
    updated = canary_update(live, _settings("s3://models/v2"), "team-a")
    final = promoted(updated, _settings("s3://models/v2"))
    assert "canary" not in final["spec"]
    predictor = final["spec"]["predictor"]
    assert predictor["name"] == live["spec"]["predictor"]["name"]
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleMetric"]) == (2, 5, "cpu")
    assert {"name": "STORAGE_URI", "value": "s3://models/v2"} in predictor["containers"][0]["env"]


def test_redeploying_the_live_model_still_gives_the_canary_its_own_name():
    live = _live("s3://models/v1")
    (canary,) = canary_update(live, _settings("s3://models/v1"), "team-a")["spec"]["canary"]
    assert canary["predictor"]["name"] != live["spec"]["predictor"]["name"]


def test_a_knative_mode_update_sets_the_traffic_percent_on_the_new_predictor():
    updated = canary_update(_live(mode="Knative"), _settings("s3://models/v2", mode="Knative"), "team-a")
    assert "canary" not in updated["spec"] and updated["spec"]["predictor"]["canaryTrafficPercent"] == 20


def test_predictor_resources_merge_field_by_field_and_keep_the_gpu():
    settings = _settings("s3://m", gpus=1, cpu="2", memory="4Gi", resources={"requests": {"cpu": "500m"}})
    container = as_dict(build(settings, "ns"))["spec"]["predictor"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "4Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
    }


@pytest.mark.parametrize(("mode", "metric"), [("Knative", "cpu"), ("Standard", "concurrency")])
def test_a_scale_metric_the_modes_autoscaler_lacks_is_refused_naming_both(mode, metric):
    # KServe's webhook answers "[cpu] is not a supported metric" (tests/cluster/test_kserve_admission.py).
    with pytest.raises(ServiceConfigError, match=f"scale_metric='{metric}': deployment_mode='{mode}' scales on"):
        ServiceSettings(name="f", image="i", model_uri="s3://m", deployment_mode=mode, scale_metric=metric)


def test_knative_mode_asks_kserve_to_merge_and_publish_the_predictors_metrics():
    settings = ServiceSettings(name="flights", image="predictor:1", model_uri="s3://m/1")
    annotations = as_dict(build(settings, "team"))["spec"]["predictor"]["annotations"]
    assert annotations == {
        "prometheus.kserve.io/port": "8080",
        "prometheus.kserve.io/path": "/metrics",
        "serving.kserve.io/enable-metric-aggregation": "true",
        "serving.kserve.io/enable-prometheus-scraping": "true",
    }


def test_a_logger_goes_to_a_sink_or_into_object_storage_one_folder_per_model_version():
    to_sink = as_dict(build(_settings("s3://models/v1", logger_url="http://broker.team/"), "team-a"))
    assert to_sink["spec"]["predictor"]["logger"] == {"url": "http://broker.team/", "mode": "all"}
    stored = as_dict(build(_settings("s3://models/v1", logger_url="s3://logs/flights", logger_mode="request"), "t"))
    assert stored["spec"]["predictor"]["logger"] == {
        "url": "s3://logs/flights",
        "mode": "request",
        # KServe's webhook requires path, parameters and key; the agent files records under the path.
        "storage": {"path": predictor_name("s3://models/v1"), "parameters": {"format": "json"}, "key": "credentials"},
    }


def test_a_logger_url_of_another_scheme_is_refused_naming_the_field():
    with pytest.raises(ServiceConfigError, match=r"logger_url='ftp://logs': expected a CloudEvents sink"):
        _settings("s3://models/v1", logger_url="ftp://logs")


def test_the_built_in_predictor_can_log_errors_only_and_nothing_else_is_asked_to():
    def args(**extra):
        (container,) = as_dict(build(_settings("s3://models/v1", **extra), "t"))["spec"]["predictor"]["containers"]
        return container["args"]

    assert "--per_request_logs" not in args()  # KServe's own logging, as before
    logged = args(per_request_logs="errors")
    assert logged[logged.index("--per_request_logs") + 1] == "errors"
    with pytest.raises(ServiceConfigError, match=r"per_request_logs='none': expected one of \['all', 'errors'\]"):
        _settings("s3://models/v1", per_request_logs="none")
    with pytest.raises(ServiceConfigError, match=r"per_request_logs='errors' is the built-in predictor's option"):
        _settings("s3://models/v1", per_request_logs="errors", model_format="sklearn")
