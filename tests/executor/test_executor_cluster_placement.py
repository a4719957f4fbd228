"""Jobs on an autoscaled AKS-like cluster (the `nox -s up` pools): the seed's machine_type
schedules and sees the node's CPUs, and jobs that no pool can ever hold (a GPU, 32 threads, a
VM size no pool has) fail as soon as the cluster-autoscaler says so, naming the resource, the
largest node and the setting to change, instead of waiting
--kubernetes-unschedulable-timeout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.azurite import Azurite
from localcluster.launcher import RunningCluster, start_cluster
from localcluster.nodeagent.images import ImageCatalog
from localcluster.nodepools import DEV_POOLS
from support.workflows import WorkflowRunner, paragraphs_mentioning

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def aks_like_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    ImageCatalog.from_environment().build("base")
    cluster = start_cluster(
        tmp_path_factory.mktemp("akscluster"),
        pools=DEV_POOLS,
        # Nodes take longer to come than the executor's 10 s between cluster reads, so that
        # it sees the scale-up while the pod waits.
        extra_args=["--autoscaler-scan-interval", "0.5", "--autoscaler-provision-seconds", "12"],
        env=dict(os.environ),
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def aks_workflow(
    aks_like_cluster: RunningCluster,
    azurite: Azurite,
    container: str,
    tmp_path: Path,
    secret_env: dict[str, str],
) -> WorkflowRunner:
    return WorkflowRunner(
        kubeconfig=aks_like_cluster.kubeconfig,
        azurite=azurite,
        container=container,
        tmp_path=tmp_path,
        secret_env=secret_env,
        local=True,
    )


PLACEMENT_SNAKEFILE = """
rule all:
    input:
        "seed.txt",
        "seed2.txt",
        "gpu.txt",
        "wide.txt",
        "elsewhere.txt",

rule seed:
    output:
        "seed.txt",
    threads: 3
    resources:
        machine_type="Standard_D3_v2",
    shell:
        "echo {threads} > {output}"

rule seed2:
    output:
        "seed2.txt",
    threads: 3
    resources:
        machine_type="Standard_D3_v2",
    shell:
        "echo {threads} > {output}"

rule gpu:
    output:
        "gpu.txt",
    resources:
        gpu=1,
    shell:
        "touch {output}"

rule wide:
    output:
        "wide.txt",
    threads: 32
    shell:
        "touch {output}"

rule elsewhere:
    output:
        "elsewhere.txt",
    resources:
        machine_type="Standard_E64s_v5",
    shell:
        "touch {output}"
"""


def test_jobs_no_pool_can_hold_fail_fast_and_the_seed_machine_type_runs(
    aks_workflow, azurite, container
):
    run = aks_workflow.run(
        PLACEMENT_SNAKEFILE,
        jobs=5,
        # The timeout stays at its default: a job failing here was decided, not timed out.
        extra_args=("--keep-going",),
    )
    assert run.returncode != 0, run.output
    blobs = azurite.service_client().get_container_client(container)
    # The pod on a 4-vCPU Standard_D3_v2 node runs the rule with all 3 threads.
    assert blobs.download_blob("seed.txt").readall().decode().strip() == "3"
    assert "--kubernetes-unschedulable-timeout=600" not in run.output

    never = "no node pool can ever hold pod"
    gpu = paragraphs_mentioning(run.output, "rule gpu", never, "nvidia.com/gpu")
    assert gpu and "the rule's gpu resource" in gpu[0], run.output
    wide = paragraphs_mentioning(run.output, "rule wide", never, "Insufficient cpu")
    assert wide, run.output
    assert "it requests 30.4 CPUs" in wide[0]  # 32 threads x --kubernetes-cpu-scalar 0.95
    assert "Standard_D3_v2), has 3.86 CPUs allocatable" in wide[0]
    assert "Lower the rule's threads" in wide[0]
    elsewhere = paragraphs_mentioning(
        run.output, "rule elsewhere", never, "node.kubernetes.io/instance-type=Standard_E64s_v5"
    )
    assert elsewhere and "machine_type" in elsewhere[0], run.output
    # Two 3-thread jobs need two Standard_D3_v2 nodes: the second waited for a scale-up, and
    # the executor said so.
    assert blobs.download_blob("seed2.txt").readall().decode().strip() == "3"
    assert "is pending: waiting for a node: scale-up of nodepool1 1->2 triggered" in run.output
    assert run.leftovers == set()
