"""The pytest plugin of the local cluster, found through the ``pytest11`` entry point.

Fixtures: ``local_cluster`` (session): a running local cluster with the node agent, or, when
KUBECONFIG is set as pytest starts and its server is not a local cluster (no
/_localcluster/info), a handle on that real cluster with ``control=None``. ``kube_api``: a
kubernetes ApiClient on it. ``executor_kubeconfig`` (session): the executor's least-privilege
account on it. ``api_server``: a fresh agent-less cluster (API server and controllers, no node
agent) on a thread of the test process, ready in a fraction of a second, with fast Job back-off;
a unit-tier fixture, not marked ``cluster``. ``azurite`` (session): Azurite on 127.0.0.1.
``container``: a fresh, empty blob container on it.

Markers: every test that uses ``local_cluster``, ``kube_api``, the node tests' ``node_cluster``
or a fixture named in the ini option ``localcluster_cluster_fixtures`` (directly or through
another fixture) is marked ``cluster``, so that ``pytest -m "not cluster"`` runs what needs
no cluster. The ini option
``localcluster_plugin_sources`` (paths relative to the rootdir) names the Python projects the
node agent installs into job images, unless LOCALCLUSTER_PLUGIN_SOURCES is set.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.azurite import Azurite, start_azurite
from localcluster.control import ClusterControl
from localcluster.launcher import RunningCluster, start_cluster
from localcluster.nodeagent.images import SOURCES_VARIABLE

_KUBECONFIG_AT_START = os.environ.get("KUBECONFIG")
RESTRICTED_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
CLUSTER_MARKER = "cluster"
CLUSTER_FIXTURES = ("local_cluster", "kube_api", "node_cluster")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "localcluster_plugin_sources",
        type="paths",
        default=[],
        help="Python projects (folders) the local cluster installs into its job images",
    )
    parser.addini(
        "localcluster_cluster_fixtures",
        type="args",
        default=[],
        help="more fixtures that start a cluster: tests using them are marked 'cluster'",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{CLUSTER_MARKER}: needs a Kubernetes cluster (the local one by default)"
    )
    sources = config.getini("localcluster_plugin_sources")
    if sources and not os.environ.get(SOURCES_VARIABLE):
        # The environment carries it to every cluster and image build this session starts.
        os.environ[SOURCES_VARIABLE] = os.pathsep.join(str(source) for source in sources)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    starters = {*CLUSTER_FIXTURES, *config.getini("localcluster_cluster_fixtures")}
    for item in items:
        # fixturenames is the closure: fixtures requested through other fixtures count too.
        if starters & set(getattr(item, "fixturenames", ())):
            item.add_marker(CLUSTER_MARKER)


def _existing_cluster(kubeconfig: str) -> RunningCluster:
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)
    configuration = api.configuration
    api.close()
    ca_file = Path(configuration.ssl_ca_cert) if configuration.ssl_ca_cert else None
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    control: ClusterControl | None = None
    try:
        with urllib.request.urlopen(
            f"{configuration.host}/_localcluster/info", timeout=10, context=context
        ) as reply:
            if reply.status == 200:
                control = ClusterControl(configuration.host, ca_file)
    except urllib.error.HTTPError:
        control = None  # a real API server: 401/403/404 for this path
    except OSError as error:
        raise pytest.UsageError(
            f"KUBECONFIG={kubeconfig}: cannot reach the cluster at {configuration.host}: {error}"
        ) from error
    return RunningCluster(
        url=configuration.host,
        kubeconfig=Path(kubeconfig),
        ca_file=ca_file,
        control=control,
        state_dir=Path(kubeconfig).parent,
    )


def require_control(cluster: RunningCluster) -> ClusterControl:
    """The control client, or skip: fault injection needs the local cluster."""
    if cluster.control is None:
        pytest.skip("needs the local cluster's control API (KUBECONFIG points at a real cluster)")
    return cluster.control


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    if _KUBECONFIG_AT_START:
        yield _existing_cluster(_KUBECONFIG_AT_START)
        return
    cluster = start_cluster(tmp_path_factory.mktemp("localcluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube_api(local_cluster: RunningCluster) -> Iterator[Any]:
    api = local_cluster.api_client()
    yield api
    api.close()


@pytest.fixture(scope="session")
def executor_kubeconfig(
    local_cluster: RunningCluster, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The kubeconfig Snakemake runs with: on the local cluster, the executor's
    least-privilege ServiceAccount in the test namespace (E2_TEST_NAMESPACE, default
    "default") bound to exactly the documented Role, with that namespace enforcing Pod
    Security "restricted"; on a real cluster (KUBECONFIG set as pytest starts), that
    kubeconfig, unchanged."""
    if local_cluster.control is None:
        return Path(local_cluster.kubeconfig)
    from localcluster.accounts import write_executor_kubeconfig

    target = tmp_path_factory.mktemp("executor-account") / "kubeconfig"
    namespace = os.environ.get("E2_TEST_NAMESPACE", "default")
    written = write_executor_kubeconfig(Path(local_cluster.kubeconfig), target, namespace)
    # ... in a namespace as strict as a hardened AKS one: Pod Security "restricted".
    from kubernetes import client

    admin = local_cluster.api_client()
    try:
        client.CoreV1Api(admin).patch_namespace(
            namespace, {"metadata": {"labels": RESTRICTED_NAMESPACE_LABELS}}
        )
    finally:
        admin.close()
    return written


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture
def container(azurite: Azurite) -> Iterator[str]:
    """A fresh, empty container on the session's Azurite; deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    service = azurite.service_client()
    service.create_container(name)
    yield name
    service.delete_container(name)


@pytest.fixture
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    from localcluster.inprocess import InProcessCluster  # the server's imports, only when used

    fast = ("--job-backoff-seconds", "0.05", "--job-backoff-cap", "0.2")
    with InProcessCluster(tmp_path_factory.mktemp("apiserver"), *fast) as cluster:
        yield cluster
