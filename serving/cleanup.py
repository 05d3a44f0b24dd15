"""Taking traffic off a canary a failed run left unpromoted (called by the exit handler)."""

from __future__ import annotations

import os


def clean_up_serving(service_name: str, namespace: str) -> list[str]:
    """Clears a left-over canary of `service_name`; reports what it did. Never raises."""
    if not service_name or not ("KUBERNETES_SERVICE_HOST" in os.environ or os.environ.get("KUBECONFIG")):
        return []
    try:
        from mlworkloads.serving.deploy import clear_canary

        outcome = clear_canary(service_name, namespace)
        return [outcome] if outcome else []
    except Exception as err:  # noqa: BLE001 - clean-up must not fail the exit handler
        return [f"could not check InferenceService {service_name} for a canary: {err}"]
