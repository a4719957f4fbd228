"""Fixtures for the API-server tests: one agent-less local cluster per session (pods are
driven by patching their status), fast job back-off and bookmarks, and a fresh namespace
per test so tests cannot see each other's objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from localcluster.control import ClusterControl
from localcluster.launcher import RunningCluster, start_cluster


@pytest.fixture(scope="session")
def api_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    cluster = start_cluster(
        tmp_path_factory.mktemp("apicluster"),
        agent=False,
        extra_args=[
            "--job-backoff-seconds",
            "0.05",
            "--job-backoff-cap",
            "0.2",
            "--bookmark-interval",
            "0.3",
            "--watch-history",
            "5000",
        ],
    )
    try:
        yield cluster
    finally:
        cluster.stop()
        log = (cluster.state_dir / "server.log").read_text()
        assert cluster.process is not None and cluster.process.returncode == 0, log
        # Controllers log and survive their own bugs; the suite must not.
        assert "Traceback" not in log, log


@pytest.fixture(scope="session")
def api_client(api_cluster: RunningCluster) -> Iterator[client.ApiClient]:
    api = api_cluster.api_client()
    yield api
    api.close()


@pytest.fixture
def control(api_cluster: RunningCluster) -> Iterator[ClusterControl]:
    assert api_cluster.control is not None
    yield api_cluster.control
    api_cluster.control.clear_faults()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def batch(api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
