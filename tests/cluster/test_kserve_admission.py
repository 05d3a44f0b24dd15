"""What the library sends KServe, judged by the REAL KServe v0.20 controller's webhooks.

KServe is installed on the test cluster from its released standalone manifests (Standard mode),
its controller built from its module; the API server calls its defaulting and validating webhooks
for every InferenceService. Objects are sent with `--dry-run=server`: admitted or refused exactly
as a create would be (webhooks included), without the controller then rolling them out. The
certificates cert-manager would make are made by support/cluster/certificates.py (SIMULATED).
"""

from __future__ import annotations

import json

import pytest

from mlworkloads.images import PREDICTOR_IMAGE
from mlworkloads.serving.inferenceservice import (
    CANARY_REFUSED_FIELDS,
    DEPLOYMENT_MODE_ANNOTATION,
    ServiceSettings,
    as_dict,
    build,
    canary_update,
    promoted,
)

VALIDATOR = 'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the request'


def _settings(model_uri: str = "s3://models/flights/v1", **overrides) -> ServiceSettings:
    return ServiceSettings(**{"name": "flights", "image": PREDICTOR_IMAGE, "model_uri": model_uri,
                              "deployment_mode": "Standard", **overrides})  # fmt: skip


SERVER_SET = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")


def _as_new(obj: dict) -> dict:
    """A stored object sent again as a create (what the server set on it removed)."""
    for key in SERVER_SET:
        obj["metadata"].pop(key, None)
    return obj


def _dry_run(kube_cluster, obj: dict, check: bool = True):
    done = kube_cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj), check=check
    )
    return json.loads(done.stdout) if done.returncode == 0 else done


def test_kserves_webhooks_are_served_with_the_injected_ca(kube_cluster):
    hooks = json.loads(kube_cluster.kubectl("get", "validatingwebhookconfiguration", "-o", "json").stdout)["items"]
    (isvc,) = [h for h in hooks if h["metadata"]["name"] == "inferenceservice.serving.kserve.io"]
    assert all(w["clientConfig"].get("caBundle") for w in isvc["webhooks"])
    assert isvc["webhooks"][0]["clientConfig"]["service"]["namespace"] == "kserve"


def test_a_standard_mode_service_is_admitted_and_defaulted_by_kserve(kube_cluster, cluster_namespace):
    sent = as_dict(build(_settings(), cluster_namespace))
    stored = _dry_run(kube_cluster, sent)
    assert stored["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] == "Standard"
    predictor = stored["spec"]["predictor"]
    assert predictor["name"] == sent["spec"]["predictor"]["name"]
    assert predictor["containers"][0]["image"] == PREDICTOR_IMAGE
    # Nothing the library set was pruned by the CRD schema.
    for key, value in sent["spec"]["predictor"].items():
        assert predictor[key] == value or key == "containers", key


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_every_object_of_a_canary_rollout_is_admitted(kube_cluster, cluster_namespace, mode):
    """First deploy, canary update and promotion, each as the library writes it (autoscaled)."""
    metric = "cpu" if mode == "Standard" else "concurrency"
    autoscaled = dict(min_replicas=2, max_replicas=5, scale_metric=metric, scale_target=70, deployment_mode=mode)
    first, second = _settings(**autoscaled), _settings("s3://models/flights/v2", **autoscaled)
    live = _dry_run(kube_cluster, as_dict(build(first, cluster_namespace)))
    updated = _dry_run(kube_cluster, _as_new(canary_update(live, second, cluster_namespace)))
    if mode == "Standard":
        (canary,) = updated["spec"]["canary"]
        assert canary["trafficPercent"] == 10
        assert canary["predictor"]["name"] != updated["spec"]["predictor"]["name"]
    else:
        assert updated["spec"]["predictor"]["canaryTrafficPercent"] == 10
    final = _dry_run(kube_cluster, _as_new(promoted(updated, second)))
    assert "canary" not in final["spec"]


@pytest.mark.parametrize("field", ["maxReplicas", "scaleMetric"])
def test_the_webhook_refuses_autoscaling_fields_on_a_standard_canary(kube_cluster, cluster_namespace, field):
    """Why the library strips CANARY_REFUSED_FIELDS: here is KServe's own refusal."""
    assert field in CANARY_REFUSED_FIELDS
    live = _dry_run(kube_cluster, as_dict(build(_settings(), cluster_namespace)))
    updated = _as_new(canary_update(live, _settings("s3://models/flights/v2"), cluster_namespace))
    updated["spec"]["canary"][0]["predictor"][field] = 5 if field == "maxReplicas" else "cpu"
    refused = _dry_run(kube_cluster, updated, check=False)
    assert refused.returncode != 0
    assert VALIDATOR in refused.stderr, refused.stderr
    assert field in refused.stderr


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        # What this library wrote before: one object, with autoscaling fields (refused by the API
        # server's strict decoding, before any webhook).
        ({"predictor": {"maxReplicas": 3}, "trafficPercent": 10}, 'unknown field "spec.canary.predictor"'),
        ([{"predictor": {}, "trafficPercent": 10}], "predictor.name is required"),
        ([{"predictor": {"name": "a"}, "trafficPercent": 60}, {"predictor": {"name": "b"}, "trafficPercent": 50}],
         "must be <= 100"),
    ],
)  # fmt: skip
def test_kserve_refuses_the_canary_shapes_the_library_must_not_write(kube_cluster, cluster_namespace, shape, message):
    service = as_dict(build(_settings(), cluster_namespace))
    containers = service["spec"]["predictor"]["containers"]
    for entry in shape if isinstance(shape, list) else [shape]:
        entry["predictor"]["containers"] = containers  # a predictor KServe would take, but for the canary rule
    service["spec"]["canary"] = shape
    refused = _dry_run(kube_cluster, service, check=False)
    assert refused.returncode != 0 and message in refused.stderr, refused.stderr


def test_a_canary_in_knative_mode_is_refused(kube_cluster, cluster_namespace):
    service = as_dict(build(_settings(deployment_mode="Knative"), cluster_namespace))
    service["spec"]["canary"] = [{"predictor": {"name": "c1"}, "trafficPercent": 10}]
    refused = _dry_run(kube_cluster, service, check=False)
    assert f"{VALIDATOR}: canary is only supported in Standard deployment mode" in refused.stderr, refused.stderr
