"""Setting up KFP's artifact store as a stock install does, on a cluster and `secured_s3`.

The `kfp-launcher` ConfigMap points `minio://` at the credential-enforcing S3 server, and the
`mlpipeline-minio-artifact` Secret holds its `kfp` user's keys under KFP's key names.
"""

from __future__ import annotations

import base64
import os
import pathlib

import boto3


def core_api(kubeconfig: str | os.PathLike | None = None):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig or os.environ["KUBECONFIG"])))


def install_launcher_config(secured_s3, namespace: str = "default", kubeconfig: str | os.PathLike | None = None):
    """As the KFP admin installs it (pass an admin's `kubeconfig`; default: $KUBECONFIG)."""
    api = core_api(kubeconfig)
    endpoint = secured_s3["endpoint"].removeprefix("http://")
    providers = (
        f"minio:\n  default:\n    endpoint: {endpoint}\n    disableSSL: true\n    region: us-east-1\n"
        "    credentials:\n      secretRef: {secretName: mlpipeline-minio-artifact, accessKeyKey: accesskey, "
        "secretKeyKey: secretkey}\n"
    )
    launcher = {"metadata": {"name": "kfp-launcher"}, "data": {"providers": providers}}
    api.create_namespaced_config_map(namespace, launcher)
    data = dict(zip(("accesskey", "secretkey"), secured_s3["kfp"], strict=True))
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    api.create_namespaced_secret(namespace, {"metadata": {"name": "mlpipeline-minio-artifact"}, "data": encoded})


def s3_client(secured_s3, user: str = "kfp"):
    keys = dict(zip(("aws_access_key_id", "aws_secret_access_key"), secured_s3[user], strict=True))
    return boto3.client("s3", endpoint_url=secured_s3["endpoint"], region_name="us-east-1", **keys)


def upload(secured_s3, local: str, key: str) -> str:
    """Uploads a file, or a directory's files, under `key` in the `mlpipeline` bucket; returns the key."""
    s3 = s3_client(secured_s3)
    path = pathlib.Path(local)
    for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if item.is_file():
            target = f"{key}/{item.relative_to(path)}" if path.is_dir() else key
            s3.upload_file(str(item), "mlpipeline", target)
    return key
