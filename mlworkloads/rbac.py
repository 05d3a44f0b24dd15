"""The Roles and RoleBindings the pipeline's service account needs, bound to exactly that subject."""

from __future__ import annotations

from importlib import resources

import yaml

from mlworkloads.artifact_store import DEFAULT_SECRET

#: The packages that ship a `rbac.yaml` with the Role their steps need.
ROLE_PACKAGES = ("mlworkloads.training", "mlworkloads.serving")


def rbac_manifests(
    namespace: str,
    service_account: str,
    service_account_namespace: str,
    artifact_secret: str = DEFAULT_SECRET,
) -> str:
    """Every shipped Role and its RoleBinding in `namespace`, the binding naming one subject.

    A RoleBinding's ServiceAccount subject without a namespace is read as the binding's own
    namespace, so jobs in `team-a` run by `pipeline-runner` of `kubeflow` need it spelled out.
    `artifact_secret` is the Secret the `kfp-launcher` ConfigMap names for the artifact store.
    """
    documents = []
    for package in ROLE_PACKAGES:
        text = (resources.files(package) / "rbac.yaml").read_text(encoding="utf-8")
        for document in yaml.safe_load_all(text):
            document["metadata"]["namespace"] = namespace
            for rule in document.get("rules") or []:
                if rule.get("resourceNames") == [DEFAULT_SECRET]:
                    rule["resourceNames"] = [artifact_secret]
            if document["kind"] == "RoleBinding":
                document["subjects"] = [
                    {"kind": "ServiceAccount", "name": service_account, "namespace": service_account_namespace}
                ]
            documents.append(document)
    header = (
        f"# mlworkloads RBAC: Roles in namespace {namespace!r}, bound to ServiceAccount "
        f"{service_account_namespace}/{service_account}.\n"
    )
    return header + yaml.safe_dump_all(documents, sort_keys=False).rstrip()
