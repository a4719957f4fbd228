"""A workflow mixing pod rules and a local rule that runs code: the local rule reads a pod's
output through storage here and stores its own; pods pass files to each other through
storage; `all` only names the targets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from localcluster.azurite import Azurite
from support.snakemake_run import run_snakemake

WORKFLOWS = Path(__file__).resolve().parent / "workflows"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_local_rule_reads_a_pod_output_and_stores_its_own(
    tmp_path: Path, azurite: Azurite, blob_container: str, local_pods, executor_kubeconfig
) -> None:
    shutil.copy(WORKFLOWS / "two_steps" / "Snakefile", tmp_path / "Snakefile")
    result = run_snakemake(tmp_path, blob_container, azurite, executor_kubeconfig)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    container = azurite.service_client().get_container_client(blob_container)
    assert container.download_blob("results/lower.txt").readall() == b"hello\n"
    assert container.download_blob("results/upper.txt").readall() == b"HELLO\n"
    # `measure` ran in this process on the 6 bytes a pod wrote.
    assert container.download_blob("results/size.txt").readall().strip() == b"6"
    # Local copies are removed at the end: none of the run's files stays here.
    names = {"lower.txt", "upper.txt", "size.txt"}
    assert [q for q in tmp_path.rglob("*.txt") if q.name in names] == [], output[-4000:]
