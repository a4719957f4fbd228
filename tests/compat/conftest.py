"""Fixtures of the compatibility suite: the executor's cluster harness, reused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.azurite import Azurite
from support.workflows import WorkflowRunner


@pytest.fixture
def pods(
    local_cluster,
    azurite: Azurite,
    container: str,
    tmp_path: Path,
    executor_kubeconfig: Path,
) -> Iterator[WorkflowRunner]:
    """Runs a Snakefile with --executor kubernetes and Azure Blob default storage."""
    if local_cluster.control is None:
        pytest.skip("pods must reach Azurite on 127.0.0.1: needs the local cluster")
    yield WorkflowRunner(
        kubeconfig=Path(local_cluster.kubeconfig),
        azurite=azurite,
        container=container,
        tmp_path=tmp_path,
        # The harness passes --envvars, which takes at least one name.
        secret_env={"COMPAT_SUITE": "1"},
        local=True,
        executor_kubeconfig=executor_kubeconfig,
    )
