"""SIMULATION of cert-manager, as far as a KServe install relies on it: done once, at install.

KServe's released manifests ask cert-manager for its webhook's serving certificate (an
``Issuer`` and a ``Certificate``) and for the CA to be injected into its webhook configurations
and CRDs (the ``cert-manager.io/inject-ca-from`` annotation). cert-manager's own controllers
cannot be built here (their modules are not served by the Go module proxy; see
``versions.toml``), so its released CRDs are installed, the API server validates the Issuer and
Certificates against them, and this module does the two things the controller and the cainjector
would do:

- each ``Certificate`` gets its ``spec.secretName`` Secret (``tls.crt``, ``tls.key``,
  ``ca.crt``) for its ``dnsNames``, signed by the test cluster's CA;
- each webhook configuration and CRD annotated ``cert-manager.io/inject-ca-from: ns/name`` gets
  that CA as the ``caBundle`` of every webhook (or of its conversion webhook).

Limits: a self-signed ``Issuer`` is honoured by the cluster CA's signature rather than the
certificate's own; nothing is renewed; Certificates made after the install are not issued;
``Certificate.status`` stays empty.
"""

from __future__ import annotations

import base64
import json

INJECT_ANNOTATION = "cert-manager.io/inject-ca-from"


def issue_and_inject(cluster) -> list[str]:
    """Issues every Certificate and injects every annotated caBundle; returns what it did."""
    ca = cluster.plane.ca
    ca_bundle = base64.b64encode(ca.cert_path.read_bytes()).decode()
    done = []
    for certificate in cluster.all_objects("certificates.cert-manager.io"):
        meta, spec = certificate["metadata"], certificate["spec"]
        names = tuple(spec.get("dnsNames") or [spec["commonName"]])
        pair = ca.issue(f"{meta['namespace']}-{meta['name']}", spec.get("commonName") or names[0], hosts=names)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": spec["secretName"], "namespace": meta["namespace"]},
            "data": {
                "tls.crt": base64.b64encode(pair.cert.read_bytes()).decode(),
                "tls.key": base64.b64encode(pair.key.read_bytes()).decode(),
                "ca.crt": ca_bundle,
            },
        }
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(secret))
        done.append(f"issued {meta['namespace']}/{spec['secretName']} for {', '.join(names)}")
    for resource in (
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "customresourcedefinitions",
    ):
        for obj in cluster.all_objects(resource):
            if INJECT_ANNOTATION not in (obj["metadata"].get("annotations") or {}):
                continue
            if resource == "customresourcedefinitions":
                conversion = obj["spec"].get("conversion") or {}
                if conversion.get("strategy") != "Webhook":
                    continue
                patch = [
                    {
                        "op": "add",
                        "path": "/spec/conversion/webhook/clientConfig/caBundle",
                        "value": ca_bundle,
                    }
                ]
            else:
                patch = [
                    {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca_bundle}
                    for i in range(len(obj.get("webhooks") or []))
                ]
            if patch:
                name = obj["metadata"]["name"]
                cluster.kubectl("patch", resource, name, "--type=json", "-p", json.dumps(patch))
                done.append(f"injected the CA into {resource}/{name}")
    return done
