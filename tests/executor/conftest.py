"""Fixtures of the executor tests that run workflows on the cluster (see support.workflows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.accounts import write_executor_kubeconfig
from localcluster.azurite import Azurite
from support.workflows import NAMESPACE, WorkflowRunner


@pytest.fixture
def secret_env() -> dict[str, str]:
    """An environment variable passed to jobs with --envvars; its value must never leak."""
    return {"E2_PIPELINE_TOKEN": f"tok-{uuid.uuid4().hex}"}


@pytest.fixture(scope="session")
def executor_kubeconfig(local_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """On the local cluster, Snakemake runs as the executor's least-privilege account: a
    ServiceAccount bound to exactly the documented Role. On a real cluster (KUBECONFIG set
    as pytest starts) it runs with that kubeconfig."""
    if local_cluster.control is None:
        return None
    target = tmp_path_factory.mktemp("executor-account") / "kubeconfig"
    return write_executor_kubeconfig(Path(local_cluster.kubeconfig), target, NAMESPACE)


@pytest.fixture
def k8s_workflow(
    local_cluster,
    azurite: Azurite,
    container: str,
    tmp_path: Path,
    secret_env: dict[str, str],
    executor_kubeconfig: Path | None,
) -> Iterator[WorkflowRunner]:
    yield WorkflowRunner(
        kubeconfig=Path(local_cluster.kubeconfig),
        azurite=azurite,
        container=container,
        tmp_path=tmp_path,
        secret_env=secret_env,
        local=local_cluster.control is not None,
        executor_kubeconfig=executor_kubeconfig,
    )


@pytest.fixture
def cluster_control(local_cluster):
    """The local cluster's control client; fault tests skip on a real cluster."""
    if local_cluster.control is None:
        pytest.skip("needs the local cluster's control API (KUBECONFIG points at a real cluster)")
    return local_cluster.control
