"""The end-to-end scenario needs pods that reach Azurite on this machine's loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from localcluster.azurite import Azurite


@pytest.fixture
def local_pods(local_cluster):
    """The local cluster, whose pods are processes on this machine (so 127.0.0.1 is shared)."""
    if local_cluster.control is None:
        pytest.skip(
            "KUBECONFIG points at a real cluster: its pods cannot reach Azurite on 127.0.0.1 "
            "(run the scenario on Azure as docs/aks.md describes)"
        )
    return local_cluster


@pytest.fixture
def blob_container(azurite: Azurite) -> Iterator[str]:
    """A fresh container, removed with everything in it afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    azurite.service_client().create_container(name)
    yield name
    azurite.service_client().delete_container(name)
