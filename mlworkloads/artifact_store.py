"""KFP's artifact store: where it is and how to sign in, read the way KFP's launcher reads it.

A stock install keeps artifacts under `minio://mlpipeline/v2/artifacts` in an S3 server inside
the cluster; the launcher finds it from the `kfp-launcher` ConfigMap of the pod's namespace
(`defaultPipelineRoot` and a `providers` YAML) and, without one, from built-in defaults: the
`mlpipeline-minio-artifact` Secret (keys `accesskey`, `secretkey`) and the endpoint
`seaweedfs.kubeflow:9000` (KFP 2.16+; `minio-service.kubeflow:9000` before, or the
`MINIO_SERVICE_SERVICE_HOST/PORT` of a same-namespace Service). Sources:
backend/src/v2/config/{env,minio,s3}.go and backend/src/v2/objectstore/config.go at 2.17.0.

The store's credentials are used for the store's own URIs only, so a team's own `s3://` data
keeps the credentials of its environment (IRSA, workload identity, AWS_* variables).

Who gets the store how:
- a step pod: `from_cluster()` reads the ConfigMap and the Secret through the API, as the
  launcher in the same pod does;
- the training replicas: `replica_env()` gives them `MLWORKLOADS_ARTIFACT_STORE` (where) and the
  keys by `secretKeyRef` (never a value in a manifest), which `from_env()` reads back;
- the predictor: KServe's storage initializer, through a Secret the deployer keeps (see
  serving/storage_secret.py).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import yaml

from mlworkloads.errors import ArtifactStoreError

LAUNCHER_CONFIGMAP = "kfp-launcher"
DEFAULT_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
DEFAULT_SECRET = "mlpipeline-minio-artifact"
DEFAULT_ACCESS_KEY_KEY, DEFAULT_SECRET_KEY_KEY = "accesskey", "secretkey"
#: The launcher's endpoint for `minio://` without a provider config (KFP 2.16 and later).
DEFAULT_ENDPOINT = "seaweedfs.kubeflow:9000"
#: What the replicas and our own processes read (the keys come by secretKeyRef).
STORE_ENV = "MLWORKLOADS_ARTIFACT_STORE"
ACCESS_KEY_ENV = "MLWORKLOADS_ARTIFACT_ACCESS_KEY"
SECRET_KEY_ENV = "MLWORKLOADS_ARTIFACT_SECRET_KEY"


@dataclasses.dataclass(frozen=True)
class ArtifactStore:
    """One S3-compatible bucket KFP keeps artifacts in, and how to reach it.

    Attributes:
        scheme: "minio" or "s3", as the pipeline root spells it.
        bucket: The bucket of the pipeline root.
        endpoint_url: `http(s)://host:port`; empty for AWS itself.
        region: The signing region ("minio" for KFP's default store).
        secret_name: The Secret holding the keys (in the pod's namespace).
        access_key_key: Key of the access key id in that Secret.
        secret_key_key: Key of the secret access key in that Secret.
        access_key: The access key id; empty when the environment's own credentials apply.
        secret_key: The secret access key.
    """

    scheme: str
    bucket: str
    endpoint_url: str = ""
    region: str = ""
    secret_name: str = ""
    access_key_key: str = DEFAULT_ACCESS_KEY_KEY
    secret_key_key: str = DEFAULT_SECRET_KEY_KEY
    access_key: str = dataclasses.field(default="", repr=False)
    secret_key: str = dataclasses.field(default="", repr=False)

    def covers(self, uri: str) -> bool:
        """Whether `uri` lies in this store (`minio://` and `s3://` name the same bucket)."""
        parsed = urlparse(uri)
        return parsed.scheme in ("minio", "s3") and parsed.netloc == self.bucket

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments of `s3fs.S3FileSystem` for this store."""
        options: dict[str, Any] = {"client_kwargs": {}}
        if self.endpoint_url:
            options["client_kwargs"]["endpoint_url"] = self.endpoint_url
        if self.region:
            options["client_kwargs"]["region_name"] = self.region
        if self.access_key:
            options.update(key=self.access_key, secret=self.secret_key)
        return options

    def location_json(self) -> str:
        """Where the store is, without its keys: the value of `MLWORKLOADS_ARTIFACT_STORE`."""
        return json.dumps(
            {"scheme": self.scheme, "bucket": self.bucket, "endpoint_url": self.endpoint_url, "region": self.region},
            sort_keys=True,
        )

    def replica_env(self) -> list[dict[str, Any]]:
        """Kubernetes env entries that give a pod this store: the location, and the keys by reference."""
        env: list[dict[str, Any]] = [{"name": STORE_ENV, "value": self.location_json()}]
        if self.secret_name:
            for name, key in ((ACCESS_KEY_ENV, self.access_key_key), (SECRET_KEY_ENV, self.secret_key_key)):
                env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": key}}})
        return env


def _endpoint_url(endpoint: str, disable_ssl: bool) -> str:
    if not endpoint or endpoint.startswith(("http://", "https://")):
        return endpoint
    return f"{'http' if disable_ssl else 'https'}://{endpoint}"


def _bucket_and_prefix(root: str) -> tuple[str, str, str]:
    parsed = urlparse(root)
    return parsed.scheme, parsed.netloc, parsed.path.lstrip("/")


def _default_minio_endpoint(env: dict[str, str]) -> str:
    host, port = env.get("MINIO_SERVICE_SERVICE_HOST"), env.get("MINIO_SERVICE_SERVICE_PORT")
    return f"{host}:{port}" if host and port else DEFAULT_ENDPOINT


def from_launcher_config(
    config: dict[str, str] | None,
    read_secret: Callable[[str], dict[str, str]],
    env: dict[str, str] | None = None,
) -> ArtifactStore:
    """The store of the default pipeline root, from the `kfp-launcher` ConfigMap's data.

    `read_secret(name)` returns a Secret's decoded data. The rules are the launcher's: no
    provider config for the root's scheme means KFP's default MinIO session (minio://) or the
    environment's credentials (s3://); otherwise the provider's default, then the first
    override whose bucket and key prefix match.

    Raises:
        ArtifactStoreError: a provider config the launcher would refuse, or a missing Secret key.
    """
    env = dict(os.environ if env is None else env)
    config = config or {}
    root = config.get("defaultPipelineRoot") or DEFAULT_PIPELINE_ROOT
    scheme, bucket, prefix = _bucket_and_prefix(root)
    if scheme not in ("minio", "s3"):
        raise ArtifactStoreError(f"pipeline root {root!r}: only minio:// and s3:// artifact stores are supported.")
    try:
        providers = yaml.safe_load(config.get("providers") or "") or {}
    except yaml.YAMLError as err:
        raise ArtifactStoreError(f"the {LAUNCHER_CONFIGMAP} ConfigMap's providers are not YAML: {err}") from err
    provider = providers.get(scheme) or {}
    if not provider:
        if scheme == "s3":  # the launcher opens the bucket with the environment's credentials
            return ArtifactStore(scheme=scheme, bucket=bucket)
        return _with_keys(
            ArtifactStore(
                scheme=scheme,
                bucket=bucket,
                endpoint_url=_endpoint_url(_default_minio_endpoint(env), disable_ssl=True),
                region="minio",
                secret_name=DEFAULT_SECRET,
            ),
            read_secret,
        )
    default = provider.get("default") or {}
    settings = {k: default.get(k) for k in ("endpoint", "region", "disableSSL", "credentials")}
    for override in provider.get("Overrides") or []:
        if override.get("bucketName") == bucket and prefix.startswith(override.get("keyPrefix") or ""):
            settings.update({k: v for k, v in override.items() if k in settings and v is not None})
            break
    credentials = settings.get("credentials") or {}
    if not credentials:
        raise ArtifactStoreError(f"the {LAUNCHER_CONFIGMAP} providers.{scheme} config has no credentials.")
    store = ArtifactStore(
        scheme=scheme,
        bucket=bucket,
        endpoint_url=_endpoint_url(settings.get("endpoint") or "", bool(settings.get("disableSSL"))),
        region=settings.get("region") or "",
    )
    if credentials.get("fromEnv"):
        return store
    ref = credentials.get("secretRef") or {}
    store = dataclasses.replace(
        store,
        secret_name=ref.get("secretName") or "",
        access_key_key=ref.get("accessKeyKey") or DEFAULT_ACCESS_KEY_KEY,
        secret_key_key=ref.get("secretKeyKey") or DEFAULT_SECRET_KEY_KEY,
    )
    if not store.secret_name:
        raise ArtifactStoreError(f"the {LAUNCHER_CONFIGMAP} providers.{scheme} credentials name no secretRef.")
    return _with_keys(store, read_secret)


def _with_keys(store: ArtifactStore, read_secret: Callable[[str], dict[str, str]]) -> ArtifactStore:
    try:
        data = read_secret(store.secret_name)
    except Exception as err:  # noqa: BLE001 - ApiException, no permission, no such Secret
        raise ArtifactStoreError(
            f"cannot read the artifact store's Secret {store.secret_name!r} ({err}); KFP's launcher reads it "
            "from the pod's namespace too: check that it exists there and that the service account may get it."
        ) from err
    missing = [key for key in (store.access_key_key, store.secret_key_key) if not data.get(key)]
    if missing:
        raise ArtifactStoreError(f"the artifact store's Secret {store.secret_name!r} has no key(s) {missing}.")
    return dataclasses.replace(store, access_key=data[store.access_key_key], secret_key=data[store.secret_key_key])


def from_env(env: dict[str, str] | None = None) -> ArtifactStore | None:
    """The store a pod was given by `replica_env()`, or None."""
    env = os.environ if env is None else env
    if not env.get(STORE_ENV):
        return None
    try:
        where = json.loads(env[STORE_ENV])
        return ArtifactStore(
            scheme=where["scheme"],
            bucket=where["bucket"],
            endpoint_url=where.get("endpoint_url") or "",
            region=where.get("region") or "",
            access_key=env.get(ACCESS_KEY_ENV, ""),
            secret_key=env.get(SECRET_KEY_ENV, ""),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ArtifactStoreError(f"{STORE_ENV}={env[STORE_ENV]!r} is not the artifact store's location: {err}") from err


def from_cluster(core_api=None) -> ArtifactStore:
    """The store, read as KFP's launcher reads it in this pod's namespace."""
    from kubernetes.client.exceptions import ApiException

    from mlworkloads.kube import api_client, pod_namespace

    if core_api is None:
        from kubernetes import client

        core_api = client.CoreV1Api(api_client())
    namespace = pod_namespace()
    try:
        config = core_api.read_namespaced_config_map(LAUNCHER_CONFIGMAP, namespace).data
    except ApiException as err:
        if err.status != 404:  # the launcher, too, runs with defaults when there is none
            raise ArtifactStoreError(f"cannot read ConfigMap {namespace}/{LAUNCHER_CONFIGMAP}: {err.reason}") from err
        config = None

    def read_secret(name: str) -> dict[str, str]:
        secret = core_api.read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    return from_launcher_config(config, read_secret)


@functools.lru_cache(maxsize=1)
def current() -> ArtifactStore | None:
    """This process's artifact store: from the environment, else from the cluster (a pod, or
    KUBECONFIG), else None. Read once per process; `current.cache_clear()` reads it again."""
    given = from_env()
    if given is not None:
        return given
    from mlworkloads.kube import cluster_reachable

    return from_cluster() if cluster_reachable() else None


def store_for(*uris: str) -> ArtifactStore | None:
    """The artifact store when any of `uris` lies in it, else None.

    The store is looked up only for `minio://` and `s3://` URIs. A `minio://` URI is always the
    store's, so failing to find the store is an error; for `s3://`, the data may be a team's
    own (read with the environment's credentials), so a store that cannot be found means None.

    Raises:
        ArtifactStoreError: a `minio://` URI and no readable store configuration.
    """
    candidates = [uri for uri in uris if uri.startswith(("minio://", "s3://"))]
    if not candidates:
        return None
    try:
        store = current()
    except ArtifactStoreError:
        if any(uri.startswith("minio://") for uri in candidates):
            raise
        return None
    if store is None:
        if any(uri.startswith("minio://") for uri in candidates):
            raise ArtifactStoreError(
                f"no KFP artifact store is configured here (outside a KFP pod, set {STORE_ENV} and its keys)."
            )
        return None
    return store if any(store.covers(uri) for uri in candidates) else None
