"""Fixtures of the training tests."""

import pytest
from support.launcher import Launcher, as_runner


@pytest.fixture
def launcher(kube_cluster, cluster_namespace, tmp_path, monkeypatch) -> Launcher:
    """The launcher's identity: `pipeline-runner` with the shipped Role, its token in KUBECONFIG."""
    return as_runner(kube_cluster, cluster_namespace, tmp_path, monkeypatch)
