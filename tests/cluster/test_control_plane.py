"""The REAL test cluster itself: what it is built from, and that it enforces what a cluster does.

These tests would pass against any conformant cluster; they are here so that a change to the
cluster support (build pins, API server flags, the pod runner) that stops it from behaving like
one fails loudly, before the launcher tests read that as a launcher bug.
"""

from __future__ import annotations

import json
import os

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from support.cluster.build import versions

from mlworkloads.images import TRAINER_IMAGE
from mlworkloads.rbac import rbac_manifests
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.job_settings import JobSettings
from mlworkloads.training.launch import trainer_command
from mlworkloads.training.pytorchjob_spec import build_job, manifest_dict

CONFIG = TrainConfig(
    train_uri="s3://b/t", validation_uri="s3://b/v", preprocessor_uri="s3://b/p", output_uri="s3://b/m"
)


def _api(kubeconfig) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def test_the_api_server_is_the_pinned_release(kube_cluster):
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == versions()["kubernetes"]["version"]


def test_the_shipped_role_grants_the_launchers_verbs_to_a_real_token_and_refuses_the_rest(
    kube_cluster, cluster_namespace, tmp_path
):
    ns = cluster_namespace
    kubeconfig = kube_cluster.service_account_kubeconfig(ns, "pipeline-runner", tmp_path / "sa.kubeconfig")
    kube_cluster.kubectl("apply", "-f", "-", input=rbac_manifests(ns, "pipeline-runner", ns))
    api = _api(kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    job = manifest_dict(
        build_job("granted", ns, JobSettings(image=TRAINER_IMAGE, num_workers=2), trainer_command(CONFIG))
    )
    custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", job)
    assert custom.list_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs")["items"]
    core.list_namespaced_pod(ns)
    core.list_namespaced_event(ns)
    refused = [
        lambda: core.delete_collection_namespaced_pod(ns),  # pods: get and list only
        lambda: core.read_namespaced_secret("someone-elses-secret", ns),  # one named Secret only
        lambda: custom.patch_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", "granted", {}),
        lambda: core.list_namespaced_pod("kube-system"),  # a Role is one namespace
    ]
    for call in refused:
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403, err.value.body
        assert f"system:serviceaccount:{ns}:pipeline-runner" in json.loads(err.value.body)["message"]


def test_the_training_operators_webhook_refuses_a_job_with_two_masters(kube_cluster, cluster_namespace):
    job = manifest_dict(
        build_job("two-masters", cluster_namespace, JobSettings(image=TRAINER_IMAGE), trainer_command(CONFIG))
    )
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    done = kube_cluster.kubectl("create", "-f", "-", input=json.dumps(job), check=False)
    assert done.returncode != 0
    assert 'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request' in done.stderr
    assert "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1" in done.stderr


def test_a_pod_reads_its_service_account_token_and_the_host_gets_no_new_paths(kube_cluster, cluster_namespace):
    """The pod runner mounts the token in the pod's own mount namespace; it must not create
    /var/run/secrets on this machine, where the kubeflow SDKs would then think they run in a pod."""
    host_had_secrets = os.path.exists("/var/run/secrets")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "whoami", "namespace": cluster_namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "alpine:3.20",
                    "command": ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"],
                }
            ],
        },
    }
    kube_cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
    kube_cluster.wait_for(cluster_namespace, "pod/whoami", "jsonpath={.status.phase}=Succeeded")
    assert kube_cluster.kubectl("-n", cluster_namespace, "logs", "whoami").stdout == cluster_namespace
    assert os.path.exists("/var/run/secrets") == host_had_secrets


def test_a_pod_asking_for_a_gpu_the_node_lacks_stays_pending_with_the_schedulers_reason(
    kube_cluster, cluster_namespace
):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "wants-gpu", "namespace": cluster_namespace},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "alpine:3.20",
                    "command": ["true"],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ]
        },
    }
    kube_cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
    kube_cluster.wait_for(cluster_namespace, "pod/wants-gpu", "condition=PodScheduled=False")
    scheduled = kube_cluster.kubectl("-n", cluster_namespace, "get", "pod/wants-gpu", "-o", "json").stdout
    status = json.loads(scheduled)["status"]
    assert status["phase"] == "Pending"
    (condition,) = [c for c in status["conditions"] if c["type"] == "PodScheduled"]
    assert condition["status"] == "False" and "Insufficient nvidia.com/gpu" in condition["message"]
