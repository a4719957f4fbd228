"""Fixtures of the executor tests that run workflows on the cluster (see support.workflows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.azurite import Azurite
from support.executor_harness import api, make_executor  # noqa: F401 - fixtures
from support.workflows import WorkflowRunner


@pytest.fixture
def secret_env() -> dict[str, str]:
    """An environment variable passed to jobs with --envvars; its value must never leak."""
    return {"E2_PIPELINE_TOKEN": f"tok-{uuid.uuid4().hex}"}


@pytest.fixture
def k8s_workflow(
    local_cluster,
    azurite: Azurite,
    container: str,
    tmp_path: Path,
    secret_env: dict[str, str],
    executor_kubeconfig: Path,
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
