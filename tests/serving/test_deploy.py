"""The deployer as the pipeline runs it: in a pod of the REAL test cluster, against KServe's controller.

The deploy step (`deploy_step`, what the `deploy_inferenceservice` component calls) runs in a pod
as ServiceAccount `pipeline-runner` holding exactly the shipped Role (`mlworkloads rbac`), so the
API server's RBAC, KServe's webhooks and its controller judge every call. KServe creates the
predictor's Deployment and Service; its pod mutator injects the storage initializer, which runs
KServe's own entrypoint script; the pod runner runs the pods (support/cluster/pod_runner.py).

Standard mode only: Knative cannot run here, so Knative-mode services are judged by the API server
and KServe's webhooks alone (tests/cluster/test_kserve_admission.py); its traffic split is not exercised.
"""

from __future__ import annotations

import json
import pathlib

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from support import rbac
from support.cluster.deployer import RUNNER, expected_predictions
from support.waiting import wait_until

from mlworkloads.images import PREDICTOR_IMAGE
from mlworkloads.serving import deploy, gate
from mlworkloads.serving.inferenceservice import ServiceSettings, build, predictor_name
from mlworkloads.training.export import load


@pytest.fixture(scope="module")
def held_out_rows(sample_features):
    return pq.read_table(sample_features["test_raw"]).slice(0, 200)


def served_probabilities(endpoint: httpx.Client, model_dir, rows, n=8):
    columns = load(model_dir).preprocessor.feature_columns
    instances = [{c: rows[c][i].as_py() for c in columns} for i in range(n)]
    response = endpoint.post("/v1/models/flights:predict", json={"instances": instances})
    response.raise_for_status()
    return np.array([[p["probabilities"]["False"], p["probabilities"]["True"]] for p in response.json()["predictions"]])


def assert_serves(endpoint: httpx.Client, model_dir, rows):
    served = served_probabilities(endpoint, model_dir, rows)
    np.testing.assert_allclose(served, load(model_dir).predict_columns(rows.slice(0, 8)), atol=1e-6)


def storage_uri(service: dict) -> str:
    env = service["spec"]["predictor"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "STORAGE_URI")


@pytest.mark.e2e
def test_a_first_deploy_gets_all_traffic_and_answers(sample_model, held_out_rows, deployer):
    done = deployer.deploy(sample_model, held_out_rows, image_pull_secrets=["registry-creds"])
    assert done.phase == "Succeeded", done.log
    assert "Ready with 100% of traffic" in done.log
    stored = deployer.service()
    assert stored["spec"]["predictor"]["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert stored["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert storage_uri(stored) == sample_model
    assert done.status["conditions"] and done.manifest["kind"] == "InferenceService"
    # KServe's pod mutator put its storage initializer before the predictor, and it ran.
    (pod,) = [
        p for p in deployer.cluster.objects("pods", deployer.namespace) if p["metadata"]["name"].startswith("flights-")
    ]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["storage-initializer"]
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert_serves(deployer.client(), sample_model, held_out_rows)
    # After KServe's pod mutator, the pod still tells a Prometheus where its metrics are, and they are there.
    scrape = {k: v for k, v in pod["metadata"]["annotations"].items() if k.startswith("prometheus.io/")}
    assert scrape == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}
    metrics = httpx.get(f"http://{pod['status']['podIP']}:8080/metrics", timeout=10).text
    assert 'mlworkloads_predictions_total{model_name="flights"' in metrics


@pytest.mark.e2e
def test_an_update_goes_out_as_a_canary_and_is_promoted(sample_model, other_model, held_out_rows, deployer):
    assert deployer.deploy(sample_model, held_out_rows).phase == "Succeeded"
    done = deployer.deploy(other_model, held_out_rows)
    assert done.phase == "Succeeded", done.log
    assert "with a 20% canary" in done.log and "promoted the canary" in done.log
    # The canary was checked the fastest way the predictor takes rows (the first 64 rows hold no
    # null category, which a tensor could not carry), through the API server's service proxy.
    assert "canary verified: 64 rows answered as expected over v2-binary" in done.log
    stored = deployer.service()
    assert "canary" not in stored["spec"] and "canaryStatuses" not in stored["status"]
    # The stable predictor kept its name (its Service and the Ingress with it) and rolled out
    # the canary's model; the canary's own Deployment is gone.
    assert stored["spec"]["predictor"]["name"] == predictor_name(sample_model)
    assert storage_uri(stored) == other_model
    stable = [f"flights-{predictor_name(sample_model)}-predictor"]
    deployments = lambda: [d["metadata"]["name"] for d in deployer.cluster.objects("deployments", deployer.namespace)]  # noqa: E731
    wait_until(lambda: deployments() == stable, what=f"only {stable} to be left", timeout=30, state=deployments)
    assert_serves(deployer.client(), other_model, held_out_rows)


@pytest.mark.e2e
def test_a_canary_that_fails_its_smoke_test_is_rolled_back_and_the_old_model_answers(
    sample_model, other_model, held_out_rows, deployer
):
    assert deployer.deploy(sample_model, held_out_rows).phase == "Succeeded"
    wrong = expected_predictions(sample_model, held_out_rows)  # what the other model will not return
    done = deployer.deploy(other_model, held_out_rows, expected=wrong)
    assert done.phase == "Failed"
    assert "rolled back" in done.log and "predictions differ from the offline ones" in done.log
    stored = deployer.service()
    assert storage_uri(stored) == sample_model and "canary" not in stored["spec"]
    assert_serves(deployer.client(), sample_model, held_out_rows)


@pytest.mark.e2e
def test_a_canary_that_never_becomes_ready_times_out_and_is_rolled_back(
    sample_model, held_out_rows, deployer, tmp_path
):
    assert deployer.deploy(sample_model, held_out_rows).phase == "Succeeded"
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.json").write_text("{}")  # the predictor cannot load it, so it never gets Ready
    done = deployer.deploy(
        sample_model, held_out_rows, expected_predictions(sample_model, held_out_rows), model_uri=str(broken),
        ready_timeout=20,
    )  # fmt: skip
    assert done.phase == "Failed"
    assert "was not Ready within 20 s" in done.log and "rolled back" in done.log
    assert storage_uri(deployer.service()) == sample_model
    assert_serves(deployer.client(), sample_model, held_out_rows)


@pytest.mark.e2e
def test_a_new_service_that_fails_is_deleted(sample_model, other_model, held_out_rows, deployer):
    done = deployer.deploy(other_model, held_out_rows, expected=expected_predictions(sample_model, held_out_rows))
    assert done.phase == "Failed" and "was deleted" in done.log
    assert deployer.cluster.objects("inferenceservices", deployer.namespace) == []


def test_a_forbidden_create_says_which_permission_is_missing(
    sample_model, held_out_rows, kube_cluster, cluster_namespace, tmp_path, monkeypatch
):
    """Without the Role, the real API server refuses; the error names the verb and the resource."""
    kubeconfig = kube_cluster.service_account_kubeconfig(cluster_namespace, RUNNER, tmp_path / "runner.kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    service = ServiceSettings(
        name="flights", image=PREDICTOR_IMAGE, model_uri=sample_model, namespace=cluster_namespace
    )
    with pytest.raises(PermissionError, match="may not (get|create) inferenceservices.serving.kserve.io"):
        deploy.deploy_kserve(service, lambda base, http: None, echo=lambda _: None)


def test_the_live_services_model_is_found_for_the_champion_comparison(kube_cluster, cluster_namespace):
    from kserve import KServeClient

    manifest = build(ServiceSettings(name="champ", image=PREDICTOR_IMAGE, model_uri="s3://m/v1"), cluster_namespace)
    client = KServeClient(config_file=str(kube_cluster.kubeconfig))
    client.create(manifest, namespace=cluster_namespace)
    assert gate.live_model_uri("champ", cluster_namespace, kserve=client) == "s3://m/v1"


@pytest.mark.e2e
def test_every_api_call_the_deployer_makes_is_granted_by_the_shipped_role(
    sample_model, other_model, held_out_rows, deployer
):
    assert deployer.deploy(sample_model, held_out_rows).phase == "Succeeded"
    assert deployer.deploy(other_model, held_out_rows).phase == "Succeeded"  # canary + promote
    wrong = expected_predictions(other_model, held_out_rows)
    assert deployer.deploy(sample_model, held_out_rows, expected=wrong).phase == "Failed"  # canary + rollback
    granted = rbac.granted(pathlib.Path(deploy.__file__).with_name("rbac.yaml"))
    used = set(deployer.calls())
    assert used <= granted, f"not granted: {used - granted}"
    # delete: a failed first deploy; get pods: only when run_id was left as KFP's placeholder;
    # patch: a Knative-mode rollback (Knative cannot run here); the rest only for a model in KFP's
    # artifact store (the storage-initializer test covers those).
    conditional = {("delete", "inferenceservices.serving.kserve.io"), ("get", "pods")}
    conditional |= {("patch", "inferenceservices.serving.kserve.io")}
    conditional |= {("get", "configmaps"), ("get", "secrets"), ("create", "secrets"), ("update", "secrets")}
    assert granted - used <= conditional, granted - used


@pytest.mark.e2e
def test_the_predictor_reads_a_model_in_kfps_artifact_store_through_kserves_storage_initializer(
    sample_model, held_out_rows, deployer, secured_s3
):
    """A model at `s3://mlpipeline/...` in a store that enforces credentials on no default
    endpoint: the deployer hands KServe's storage initializer the store's endpoint and keys
    through the Secret named by `serving.kserve.io/storageSecretName`, and KServe's credential
    builder gives them to the init container."""
    from support import kfp_store

    kfp_store.install_launcher_config(secured_s3, namespace=deployer.namespace)
    key = kfp_store.upload(secured_s3, sample_model, "v2/artifacts/training-pipeline/run-7/train-pytorchjob/model")
    done = deployer.deploy(sample_model, held_out_rows, model_uri=f"s3://mlpipeline/{key}")
    assert done.phase == "Succeeded", done.log
    assert (
        done.manifest["metadata"]["annotations"]["serving.kserve.io/storageSecretName"] == "mlworkloads-artifact-store"
    )
    secret = kfp_store.core_api().read_namespaced_secret("mlworkloads-artifact-store", deployer.namespace)
    assert secret.metadata.annotations["serving.kserve.io/s3-endpoint"] == secured_s3["endpoint"]
    assert set(secret.data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert_serves(deployer.client(), sample_model, held_out_rows)
    granted = rbac.granted(pathlib.Path(deploy.__file__).with_name("rbac.yaml"))
    assert {("get", "configmaps"), ("get", "secrets"), ("create", "secrets")} <= set(deployer.calls())
    assert set(deployer.calls()) <= granted


@pytest.mark.e2e
def test_a_predictor_deployed_with_a_grpc_port_answers_grpc_on_the_port_kserve_publishes(
    sample_model, held_out_rows, deployer
):
    from support.v2_cases import feature_specs, json_specs, triton_grpc

    done = deployer.deploy(sample_model, held_out_rows, grpc_port=8081)
    assert done.phase == "Succeeded", done.log
    # KServe's controller publishes every container port on the predictor's Service, a port
    # named for gRPC with the h2c app protocol that meshes and ingresses route by.
    (service,) = [
        s
        for s in deployer.cluster.objects("services", deployer.namespace)
        if s["metadata"]["name"].endswith("-predictor")
    ]
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert (grpc_port["port"], grpc_port["targetPort"], grpc_port.get("appProtocol")) == (
        8081,
        8081,
        "kubernetes.io/h2c",
    )
    (pod,) = [
        p for p in deployer.cluster.objects("pods", deployer.namespace) if p["metadata"]["name"].startswith("flights-")
    ]
    rows = held_out_rows.slice(0, 8)
    request = {"inputs": json_specs(feature_specs(sample_model, rows))}
    (answer,) = triton_grpc({"url": f"{pod['status']['podIP']}:8081", "model": "flights", "requests": [request]})
    assert answer["ok"], answer
    np.testing.assert_allclose(
        np.array(answer["outputs"]["probabilities"]).reshape(-1, 2), load(sample_model).predict_columns(rows), atol=1e-6
    )


@pytest.mark.e2e
def test_a_predictor_with_a_logger_gets_kserves_agent_whose_events_become_the_logged_dataset(
    sample_model, held_out_rows, deployer, tmp_path
):
    """KServe's agent (built from its module) is injected by its real pod mutator and logs every
    prediction that reaches the Service to a CloudEvents sink; `prediction_logs` reads what it sent."""
    import uuid

    from support.cloudevents_sink import cloudevents_sink
    from support.v2_cases import feature_specs, json_specs

    from mlworkloads.data.steps import prediction_logs_step

    columns = load(sample_model).preprocessor.feature_columns
    v1_rows, v2_rows = held_out_rows.slice(100, 5), held_out_rows.slice(110, 3)
    with cloudevents_sink(tmp_path / "sink") as sink:
        done = deployer.deploy(sample_model, held_out_rows, logger_url=sink.url)
        assert done.phase == "Succeeded", done.log
        (pod,) = [
            p
            for p in deployer.cluster.objects("pods", deployer.namespace)
            if p["metadata"]["name"].startswith("flights-")
        ]
        assert [c["name"] for c in pod["spec"]["containers"]] == ["kserve-container", "agent"]
        (service,) = [
            s
            for s in deployer.cluster.objects("services", deployer.namespace)
            if s["metadata"]["name"].endswith("-predictor")
        ]
        assert service["spec"]["ports"][0]["targetPort"] == 9081  # KServe routes the Service through its agent
        # The deploy step's own smoke test went through the agent: a request and its response.
        assert sink.types.count("org.kubeflow.serving.inference.response") >= 1, sink.types
        logged_before = len(sink.types)
        endpoint = deployer.client()
        v1_id, v2_id = str(uuid.uuid4()), str(uuid.uuid4())
        v1 = {"instances": [{c: v1_rows[c][i].as_py() for c in columns} for i in range(v1_rows.num_rows)]}
        v1_answer = endpoint.post("/v1/models/flights:predict", json=v1, headers={"Ce-Id": v1_id})
        v2 = {"inputs": json_specs(feature_specs(sample_model, v2_rows))}
        v2_answer = endpoint.post("/v2/models/flights/infer", json=v2, headers={"Ce-Id": v2_id})
        assert v1_answer.status_code == v2_answer.status_code == 200, (v1_answer.text, v2_answer.text)
        wait_until(
            lambda: len(sink.types) >= logged_before + 4,
            what="the agent's request and response events of both predictions",
            timeout=60,
            state=lambda: sink.types,
        )
    dataset, report = tmp_path / "logged.parquet", tmp_path / "report.md"
    summary = prediction_logs_step(str(sink.path), str(dataset), str(report))
    assert summary["requests_without_response"] == summary["responses_without_request"] == 0, summary
    assert summary["other_events"] == 0 and summary["requests"] >= 3, summary  # the smoke test's, and ours
    table = pq.read_table(dataset).to_pylist()
    logged_v1 = [r for r in table if r["event_id"] == v1_id]
    assert [r["month"] for r in logged_v1] == v1_rows["month"].to_pylist()
    assert [r["probability_True"] for r in logged_v1] == [
        p["probabilities"]["True"] for p in v1_answer.json()["predictions"]
    ]
    logged_v2 = [r for r in table if r["event_id"] == v2_id]
    assert [r["carrier"] for r in logged_v2] == v2_rows["carrier"].to_pylist()
    assert [r["predicted_class"] for r in logged_v2] == [
        str(c) for c in next(o for o in v2_answer.json()["outputs"] if o["name"] == "predicted_class")["data"]
    ]


@pytest.mark.e2e
def test_a_logger_into_kfps_artifact_store_has_kserves_agent_write_the_records_prediction_logs_reads(
    sample_model, held_out_rows, deployer, secured_s3, monkeypatch, tmp_path
):
    """`logger_url=s3://...`: KServe's agent writes each request and response into object storage
    itself (its JSON marshaller, its S3 client), with the credentials KServe's credential builder
    gives it from the storage Secret; `prediction_logs` reads them from the store."""
    import uuid

    from support import kfp_store

    from mlworkloads import artifact_store
    from mlworkloads.data.steps import prediction_logs_step

    kfp_store.install_launcher_config(secured_s3, namespace=deployer.namespace)
    key = kfp_store.upload(secured_s3, sample_model, "v2/artifacts/training-pipeline/run-8/train-pytorchjob/model")
    model_uri = f"s3://mlpipeline/{key}"
    done = deployer.deploy(
        sample_model, held_out_rows, model_uri=model_uri, logger_url="s3://mlpipeline/prediction-logs"
    )
    assert done.phase == "Succeeded", done.log
    logger = done.manifest["spec"]["predictor"]["logger"]
    assert logger["storage"] == {
        "path": predictor_name(model_uri),
        "parameters": {"format": "json"},
        "key": "credentials",
    }
    columns = load(sample_model).preprocessor.feature_columns
    rows, request_id = held_out_rows.slice(120, 4), str(uuid.uuid4())
    body = {"instances": [{c: rows[c][i].as_py() for c in columns} for i in range(rows.num_rows)]}
    answer = deployer.client().post("/v1/models/flights:predict", json=body, headers={"Ce-Id": request_id})
    assert answer.status_code == 200, answer.text
    s3 = kfp_store.s3_client(secured_s3)
    prefix = f"prediction-logs/{deployer.namespace}/flights/predictor/{predictor_name(model_uri)}/"

    def stored():
        listed = s3.list_objects_v2(Bucket="mlpipeline", Prefix=prefix).get("Contents", [])
        return {o["Key"].removeprefix(prefix) for o in listed}

    wait_until(
        lambda: {f"{request_id}-request.json", f"{request_id}-response.json"} <= stored(),
        what="the agent's records of the prediction in the store",
        timeout=60,
        state=stored,
    )
    # Read as a pipeline step reads KFP's store: its location and keys from the environment.
    store = json.dumps({"scheme": "s3", "bucket": "mlpipeline", "endpoint_url": secured_s3["endpoint"]})
    monkeypatch.setenv(artifact_store.STORE_ENV, store)
    monkeypatch.setenv(artifact_store.ACCESS_KEY_ENV, secured_s3["kfp"][0])
    monkeypatch.setenv(artifact_store.SECRET_KEY_ENV, secured_s3["kfp"][1])
    artifact_store.current.cache_clear()
    try:
        summary = prediction_logs_step(f"s3://mlpipeline/{prefix}", str(tmp_path / "d.parquet"), str(tmp_path / "r.md"))
    finally:
        artifact_store.current.cache_clear()
    assert summary["requests_without_response"] == 0, summary
    logged = [r for r in pq.read_table(tmp_path / "d.parquet").to_pylist() if r["event_id"] == request_id]
    assert [r["dest"] for r in logged] == rows["dest"].to_pylist()
    assert [r["probability_True"] for r in logged] == [p["probabilities"]["True"] for p in answer.json()["predictions"]]
