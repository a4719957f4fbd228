"""The end-to-end scenario needs pods that reach Azurite on this machine's loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from localcluster.azurite import Azurite
from localcluster.launcher import RunningCluster, start_cluster
from localcluster.nodepools import DEV_POOLS

# `nox -s up`'s autoscaler, with nodes that come sooner (5 s instead of 15 s) so that the
# scale-up costs the tutorial run little, and no scale-down while the test looks.
TUTORIAL_AUTOSCALER_ARGS = [
    "--autoscaler-scan-interval",
    "0.5",
    "--autoscaler-provision-seconds",
    "5",
    "--autoscaler-scale-down-unneeded-seconds",
    "900",
]


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


@pytest.fixture(scope="module")
def aks_tutorial_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningCluster]:
    """The seed's AKS cluster as `nox -s up` starts it (a tainted system pool and nodepool1 of
    Standard_D3_v2, autoscaled 1-3), always local: the pods must reach Azurite on 127.0.0.1,
    so a KUBECONFIG pointing at a real cluster does not replace it."""
    cluster = start_cluster(
        tmp_path_factory.mktemp("tutorialcluster"),
        pools=DEV_POOLS,
        extra_args=TUTORIAL_AUTOSCALER_ARGS,
        env=dict(os.environ),
    )
    try:
        yield cluster
    finally:
        cluster.stop()
