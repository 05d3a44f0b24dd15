"""The deployer through the real KServeClient, against the EMULATED cluster's KServe controller."""

import pathlib

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from support import rbac

from mlworkloads.images import PREDICTOR_IMAGE
from mlworkloads.serving import deploy, gate
from mlworkloads.serving.inferenceservice import ServiceSettings, predictor_name
from mlworkloads.training.evaluation import evaluate
from mlworkloads.training.export import load


@pytest.fixture(scope="module")
def held_out_rows(sample_features):
    return pq.read_table(sample_features["test_raw"]).slice(0, 200)


def _expected(model_dir, rows):
    return evaluate(load(model_dir), rows).predictions


def _deploy(model_dir, rows, expected=None, mode="Knative", timeout=60, name="flights", **settings):
    model = load(model_dir)
    service = ServiceSettings(
        name=name,
        image=PREDICTOR_IMAGE,
        model_uri=model_dir,
        namespace="default",
        deployment_mode=mode,
        canary_traffic_percent=20,
        **settings,
    )
    lines = []
    outcome = deploy.deploy_kserve(
        service,
        rows,
        expected if expected is not None else _expected(model_dir, rows),
        model.preprocessor.feature_columns,
        model.preprocessor.classes,
        ready_timeout=timeout,
        poll_interval=1,
        echo=lines.append,
    )
    return outcome, lines


def _served_probabilities(url, model_dir, rows, n=8):
    columns = load(model_dir).preprocessor.feature_columns
    instances = [{c: rows[c][i].as_py() for c in columns} for i in range(n)]
    response = httpx.post(f"{url}/v1/models/flights:predict", json={"instances": instances}, timeout=30)
    response.raise_for_status()
    return np.array([[p["probabilities"]["False"], p["probabilities"]["True"]] for p in response.json()["predictions"]])


def _service_url(cluster):
    (service,) = cluster.jobs("inferenceservices")
    return service["status"]["url"]


@pytest.mark.e2e
def test_a_first_deploy_gets_all_traffic_and_answers(sample_model, held_out_rows, emulated_cluster):
    outcome, lines = _deploy(sample_model, held_out_rows, image_pull_secrets=["registry-creds"])
    assert any("Ready with 100% of traffic" in line for line in lines)
    (stored,) = emulated_cluster.jobs("inferenceservices")
    assert stored["spec"]["predictor"]["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert stored["apiVersion"] == "serving.kserve.io/v1beta1"
    assert stored["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    container = stored["spec"]["predictor"]["containers"][0]
    assert {"name": "STORAGE_URI", "value": sample_model} in container["env"]
    served = _served_probabilities(outcome["url"], sample_model, held_out_rows)
    np.testing.assert_allclose(served, load(sample_model).predict_columns(held_out_rows.slice(0, 8)), atol=1e-6)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_an_update_goes_out_as_a_canary_and_is_promoted(
    sample_model, other_model, held_out_rows, emulated_cluster, mode
):
    _deploy(sample_model, held_out_rows, mode=mode)
    outcome, lines = _deploy(other_model, held_out_rows, mode=mode)
    assert any("with a 20% canary" in line for line in lines)
    assert any("promoted the canary" in line for line in lines)
    (stored,) = emulated_cluster.jobs("inferenceservices")
    assert "canary" not in stored["spec"] and "canaryTrafficPercent" not in stored["spec"]["predictor"]
    if mode == "Knative":
        assert stored["status"]["components"]["predictor"]["traffic"][0]["percent"] == 100
    else:  # the promoted canary took over the stable predictor's name, and with it all traffic
        assert stored["spec"]["predictor"]["name"] == predictor_name(other_model)
        assert "canaryStatuses" not in stored["status"]
    served = _served_probabilities(_service_url(emulated_cluster), other_model, held_out_rows)
    np.testing.assert_allclose(served, load(other_model).predict_columns(held_out_rows.slice(0, 8)), atol=1e-6)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_a_canary_that_fails_its_smoke_test_is_rolled_back_and_the_old_model_answers(
    sample_model, other_model, held_out_rows, emulated_cluster, mode
):
    _deploy(sample_model, held_out_rows, mode=mode)
    wrong_expectations = _expected(sample_model, held_out_rows)  # what the other model will not return
    with pytest.raises(deploy.DeployFailed) as err:
        _deploy(other_model, held_out_rows, expected=wrong_expectations, mode=mode)
    assert "rolled back" in str(err.value) and "predictions differ from the offline ones" in str(err.value)
    (stored,) = emulated_cluster.jobs("inferenceservices")
    assert {"name": "STORAGE_URI", "value": sample_model} in stored["spec"]["predictor"]["containers"][0]["env"]
    assert "canary" not in stored["spec"]
    served = _served_probabilities(_service_url(emulated_cluster), sample_model, held_out_rows)
    np.testing.assert_allclose(served, load(sample_model).predict_columns(held_out_rows.slice(0, 8)), atol=1e-6)


@pytest.mark.e2e
def test_a_canary_that_never_becomes_ready_times_out_and_is_rolled_back(
    sample_model, held_out_rows, emulated_cluster, tmp_path
):
    _deploy(sample_model, held_out_rows)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.json").write_text("{}")
    model = load(sample_model)
    service = ServiceSettings(name="flights", image=PREDICTOR_IMAGE, model_uri=str(broken), namespace="default")
    with pytest.raises(deploy.DeployFailed) as err:
        deploy.deploy_kserve(
            service,
            held_out_rows,
            _expected(sample_model, held_out_rows),
            model.preprocessor.feature_columns,
            model.preprocessor.classes,
            ready_timeout=8,
            poll_interval=1,
            echo=lambda _: None,
        )
    assert "was not Ready within 8 s" in str(err.value) and "rolled back" in str(err.value)
    served = _served_probabilities(_service_url(emulated_cluster), sample_model, held_out_rows)
    np.testing.assert_allclose(served, model.predict_columns(held_out_rows.slice(0, 8)), atol=1e-6)


@pytest.mark.e2e
def test_a_new_service_that_fails_is_deleted(sample_model, other_model, held_out_rows, emulated_cluster):
    with pytest.raises(deploy.DeployFailed, match="was deleted"):
        _deploy(other_model, held_out_rows, expected=_expected(sample_model, held_out_rows))
    assert emulated_cluster.jobs("inferenceservices") == []


def test_a_forbidden_create_says_which_permission_is_missing(sample_model, held_out_rows, emulated_cluster):
    emulated_cluster.deny.add(("create", "inferenceservices.serving.kserve.io"))
    with pytest.raises(PermissionError, match="may not create inferenceservices.serving.kserve.io"):
        _deploy(sample_model, held_out_rows)


def test_the_live_services_model_is_found_for_the_champion_comparison(sample_model, emulated_cluster):
    from kserve import KServeClient

    from mlworkloads.serving.inferenceservice import build

    manifest = build(ServiceSettings(name="champ", image=PREDICTOR_IMAGE, model_uri="s3://m/v1"), "default")
    client = KServeClient(config_file=str(pathlib.Path(emulated_cluster.workdir).parent / "kubeconfig"))
    client.create(manifest, namespace="default")
    assert gate.live_model_uri("champ", "default", kserve=client) == "s3://m/v1"


@pytest.mark.e2e
def test_every_api_call_the_deployer_makes_is_granted_by_the_shipped_role(
    sample_model, other_model, held_out_rows, emulated_cluster
):
    for mode, name in (("Knative", "flights"), ("Standard", "flights-std")):
        _deploy(sample_model, held_out_rows, mode=mode, name=name)
        _deploy(other_model, held_out_rows, mode=mode, name=name)  # canary + promote
        with pytest.raises(deploy.DeployFailed):  # canary + rollback
            _deploy(sample_model, held_out_rows, expected=_expected(other_model, held_out_rows), mode=mode, name=name)
    granted = rbac.granted(pathlib.Path(deploy.__file__).with_name("rbac.yaml"))
    used = set(emulated_cluster.calls)
    assert used <= granted, f"not granted: {used - granted}"
    # delete: a failed first deploy; get pods: only when run_id was left as KFP's placeholder; the
    # rest only for a model in KFP's artifact store (the storage-initializer test covers those).
    conditional = {("delete", "inferenceservices.serving.kserve.io"), ("get", "pods")}
    conditional |= {("get", "configmaps"), ("get", "secrets"), ("create", "secrets"), ("update", "secrets")}
    assert granted - used <= conditional, granted - used


@pytest.mark.e2e
def test_the_predictor_reads_a_model_in_kfps_artifact_store_through_kserves_storage_initializer(
    sample_model, held_out_rows, emulated_cluster, secured_s3, monkeypatch
):
    """A model at `s3://mlpipeline/...` in a store that enforces credentials on no default
    endpoint: the deployer hands KServe's storage initializer (the real `kserve-storage` code, run
    as the init container) the store's endpoint and keys through the Secret named by
    `serving.kserve.io/storageSecretName`. Before, it got neither and never became Ready."""
    from support import kfp_store

    from mlworkloads import artifact_store

    monkeypatch.delenv(artifact_store.STORE_ENV, raising=False)
    kfp_store.install_launcher_config(secured_s3)
    emulated_cluster.calls.clear()  # from here on, only the deployer's calls
    key = kfp_store.upload(secured_s3, sample_model, "v2/artifacts/training-pipeline/run-7/train-pytorchjob/model")
    model = load(sample_model)
    service = ServiceSettings(
        name="flights", image=PREDICTOR_IMAGE, model_uri=f"s3://mlpipeline/{key}", namespace="default",
        deployment_mode="Standard",
    )  # fmt: skip
    outcome = deploy.deploy_kserve(
        service, held_out_rows, _expected(sample_model, held_out_rows), model.preprocessor.feature_columns,
        model.preprocessor.classes, ready_timeout=90, poll_interval=1, echo=lambda _: None,
    )  # fmt: skip
    assert outcome["manifest"]["metadata"]["annotations"]["serving.kserve.io/storageSecretName"] == (
        "mlworkloads-artifact-store"
    )
    secret = kfp_store.core_api().read_namespaced_secret("mlworkloads-artifact-store", "default")
    assert secret.metadata.annotations["serving.kserve.io/s3-endpoint"] == secured_s3["endpoint"]
    assert set(secret.data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    served = _served_probabilities(_service_url(emulated_cluster), sample_model, held_out_rows)
    np.testing.assert_allclose(served, model.predict_columns(held_out_rows.slice(0, 8)), atol=1e-6)
    granted = rbac.granted(pathlib.Path(deploy.__file__).with_name("rbac.yaml"))
    assert {("get", "configmaps"), ("get", "secrets"), ("create", "secrets")} <= set(emulated_cluster.calls)
    assert set(emulated_cluster.calls) <= granted
