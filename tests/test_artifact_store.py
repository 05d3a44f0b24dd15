"""KFP's artifact store, found as KFP's launcher finds it and used only for its own URIs.

The rules come from KFP 2.17.0: backend/src/v2/config/env.go (the `kfp-launcher` ConfigMap,
the default `minio://mlpipeline/v2/artifacts` root, the `mlpipeline-minio-artifact` Secret),
backend/src/v2/config/s3.go (provider defaults and overrides by bucket and key prefix) and
backend/src/v2/objectstore/config.go (the default endpoint). The storage tests run against an
S3 server that enforces credentials on a random loopback port (`secured_s3`).
"""

import base64
import os

import boto3
import pytest
import s3fs

from mlworkloads import artifact_store
from mlworkloads.artifact_store import ArtifactStore, from_env, from_launcher_config
from mlworkloads.data.errors import DataError
from mlworkloads.data.storage import read_bytes
from mlworkloads.errors import ArtifactStoreError

KEYS = {"mlpipeline-minio-artifact": {"accesskey": "kfp-access", "secretkey": "kfp-secret"}}


def _secret(name):
    return KEYS[name]


def test_without_a_configmap_the_store_is_kfps_default_minio():
    store = from_launcher_config(None, _secret, env={})
    assert (store.scheme, store.bucket, store.endpoint_url, store.region) == (
        "minio",
        "mlpipeline",
        "http://seaweedfs.kubeflow:9000",
        "minio",
    )
    assert (store.secret_name, store.access_key, store.secret_key) == (
        "mlpipeline-minio-artifact",
        "kfp-access",
        "kfp-secret",
    )


def test_a_minio_service_in_the_namespace_is_the_default_endpoint():
    env = {"MINIO_SERVICE_SERVICE_HOST": "10.0.0.7", "MINIO_SERVICE_SERVICE_PORT": "9000"}
    assert from_launcher_config({}, _secret, env=env).endpoint_url == "http://10.0.0.7:9000"


def test_a_provider_default_and_the_matching_override_are_used_as_the_launcher_uses_them():
    providers = """
s3:
  default:
    endpoint: s3.eu-west-1.amazonaws.com
    region: eu-west-1
    credentials:
      secretRef: {secretName: shared, accessKeyKey: id, secretKeyKey: key}
  Overrides:
    - bucketName: other
      keyPrefix: ""
      endpoint: wrong.example.com
      credentials: {fromEnv: true}
    - bucketName: team-artifacts
      keyPrefix: kfp/
      endpoint: minio.team.svc:9000
      disableSSL: true
      credentials:
        secretRef: {secretName: team-store, accessKeyKey: a, secretKeyKey: b}
"""
    config = {"defaultPipelineRoot": "s3://team-artifacts/kfp/root", "providers": providers}
    secrets = {"team-store": {"a": "team-id", "b": "team-key"}}
    store = from_launcher_config(config, secrets.__getitem__, env={})
    assert (store.endpoint_url, store.region, store.secret_name) == (
        "http://minio.team.svc:9000",
        "eu-west-1",
        "team-store",
    )
    assert (store.access_key, store.secret_key) == ("team-id", "team-key")


def test_an_s3_root_without_a_provider_uses_the_environments_credentials():
    store = from_launcher_config({"defaultPipelineRoot": "s3://my-bucket/kfp"}, _secret, env={})
    assert store == ArtifactStore(scheme="s3", bucket="my-bucket")
    assert store.storage_options() == {"client_kwargs": {}}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"providers": "minio: [unclosed"}, "providers are not YAML"),
        ({"providers": "minio:\n  default:\n    endpoint: x:9000\n"}, "has no credentials"),
        ({"defaultPipelineRoot": "gs://bucket/root"}, "only minio:// and s3://"),
    ],
)
def test_a_launcher_config_the_launcher_would_refuse_is_refused_naming_it(config, message):
    with pytest.raises(ArtifactStoreError, match=message):
        from_launcher_config(config, _secret, env={})


def test_a_secret_without_the_keys_is_refused_naming_the_secret():
    with pytest.raises(ArtifactStoreError, match=r"Secret 'mlpipeline-minio-artifact' has no key\(s\) \['secretkey'\]"):
        from_launcher_config(None, lambda name: {"accesskey": "a"}, env={})


def test_the_replicas_get_the_location_and_the_keys_by_reference_only():
    store = from_launcher_config(None, _secret, env={})
    env = store.replica_env()
    assert "kfp-secret" not in str(env) and "kfp-access" not in str(env)
    assert {
        "name": "MLWORKLOADS_ARTIFACT_SECRET_KEY",
        "valueFrom": {"secretKeyRef": {"name": "mlpipeline-minio-artifact", "key": "secretkey"}},
    } in env  # noqa: E501
    resolved = {e["name"]: e.get("value") for e in env}
    resolved.update(MLWORKLOADS_ARTIFACT_ACCESS_KEY="kfp-access", MLWORKLOADS_ARTIFACT_SECRET_KEY="kfp-secret")
    assert from_env(resolved) == ArtifactStore(
        scheme="minio", bucket="mlpipeline", endpoint_url="http://seaweedfs.kubeflow:9000", region="minio",
        access_key="kfp-access", secret_key="kfp-secret",
    )  # fmt: skip


# ---- against an S3 server that enforces credentials -------------------------------------------


def _client(secured_s3, user):
    keys = dict(zip(("aws_access_key_id", "aws_secret_access_key"), secured_s3[user], strict=True))
    return boto3.client("s3", endpoint_url=secured_s3["endpoint"], region_name="us-east-1", **keys)


def _give_store(monkeypatch, secured_s3, keys):
    store = ArtifactStore(scheme="minio", bucket="mlpipeline", endpoint_url=secured_s3["endpoint"], region="us-east-1")
    for entry in store.replica_env():
        if "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
    monkeypatch.setenv(artifact_store.ACCESS_KEY_ENV, keys[0])
    monkeypatch.setenv(artifact_store.SECRET_KEY_ENV, keys[1])


def test_store_uris_use_the_stores_keys_while_a_teams_own_s3_keeps_its_credentials(secured_s3, monkeypatch):
    _client(secured_s3, "kfp").put_object(Bucket="mlpipeline", Key="v2/artifacts/run/train", Body=b"kfp artifact")
    _client(secured_s3, "team").put_object(Bucket="team-data", Key="flights.csv", Body=b"team data")
    # The team's own credentials, as IRSA or AWS_* variables give them to the step.
    team_key, team_secret = secured_s3["team"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", team_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", team_secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", secured_s3["endpoint"])
    _give_store(monkeypatch, secured_s3, secured_s3["kfp"])
    s3fs.S3FileSystem.clear_instance_cache()
    assert read_bytes("minio://mlpipeline/v2/artifacts/run/train") == b"kfp artifact"
    assert read_bytes("s3://mlpipeline/v2/artifacts/run/train") == b"kfp artifact"  # the same bucket
    assert read_bytes("s3://team-data/flights.csv") == b"team data"


def test_a_minio_uri_without_a_configured_store_is_refused_naming_what_to_set(monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv(artifact_store.STORE_ENV, raising=False)
    with pytest.raises(DataError, match="no KFP artifact store is configured here .*MLWORKLOADS_ARTIFACT_STORE"):
        read_bytes("minio://mlpipeline/v2/artifacts/run/train")


def test_wrong_store_keys_fail_naming_the_uri(secured_s3, monkeypatch):
    _give_store(monkeypatch, secured_s3, ("AKIAWRONG", "wrong"))
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(DataError, match=r"cannot read 'minio://mlpipeline/v2/artifacts/x'"):
        read_bytes("minio://mlpipeline/v2/artifacts/x")


def test_the_store_is_read_from_the_cluster_as_the_launcher_reads_it(kube_cluster, cluster_namespace):
    """In a pod of the real cluster, as `pipeline-runner` with the shipped Role naming the store's Secret."""
    from kubernetes import client, config

    from mlworkloads.rbac import rbac_manifests

    api = client.CoreV1Api(config.new_client_from_config(config_file=os.environ["KUBECONFIG"]))
    providers = (
        "minio:\n  default:\n    endpoint: 127.0.0.1:9999\n    disableSSL: true\n    region: minio\n"
        "    credentials:\n      secretRef: {secretName: store-keys, accessKeyKey: id, secretKeyKey: key}\n"
    )
    api.create_namespaced_config_map(
        cluster_namespace, {"metadata": {"name": "kfp-launcher"}, "data": {"providers": providers}}
    )
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in {"id": "abc", "key": "xyz"}.items()}
    api.create_namespaced_secret(cluster_namespace, {"metadata": {"name": "store-keys"}, "data": encoded})
    kube_cluster.kubectl("-n", cluster_namespace, "create", "serviceaccount", "pipeline-runner")
    roles = rbac_manifests(cluster_namespace, "pipeline-runner", cluster_namespace, artifact_secret="store-keys")
    kube_cluster.kubectl("apply", "-f", "-", input=roles)
    code = (
        "from mlworkloads import artifact_store; s = artifact_store.current(); "
        "print('store:', s.endpoint_url, s.secret_name, s.access_key, s.secret_key)"
    )
    phase, log = kube_cluster.run_pod(
        cluster_namespace, "read-store", ["python", "-c", code], service_account="pipeline-runner", timeout=120
    )
    assert phase == "Succeeded", log
    assert "store: http://127.0.0.1:9999 store-keys abc xyz" in log.splitlines()
