"""The end-to-end scenario needs pods that reach Azurite on this machine's loopback."""

from __future__ import annotations

import pytest


@pytest.fixture
def local_pods(local_cluster):
    """The local cluster, whose pods are processes on this machine (so 127.0.0.1 is shared)."""
    if local_cluster.control is None:
        pytest.skip(
            "KUBECONFIG points at a real cluster: its pods cannot reach Azurite on 127.0.0.1 "
            "(run the scenario on Azure as docs/aks.md describes)"
        )
    return local_cluster
