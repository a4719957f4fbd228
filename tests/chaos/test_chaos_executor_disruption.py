"""Pods evicted and nodes lost mid-run: Kubernetes retries each such job in a new pod
(the Job's disruption policy), Snakemake's own --retries stay unused, the log says so, and
every job finishes exactly once with nothing left behind.
"""

from __future__ import annotations

import uuid

import pytest

from localcluster.testing import wait_until
from support.chaos import (
    EXECUTOR_USER_AGENT,
    assert_each_job_finished_once,
    assert_outputs,
    request_figures,
    run_id_of,
    run_objects,
    secret_leaks,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

POOL_LABEL = "chaos.test/pool"
SLOW_JOBS = 3
RETRY_NOTICE = "Kubernetes retries the job in a new pod"
SNAKEMAKE_RETRY = "Trying to restart job"

SLOW_SNAKEFILE = f"""
localrules: all

rule all:
    input:
        expand("slow/{{i}}.txt", i=range({SLOW_JOBS})),

rule slow:
    output:
        "slow/{{i}}.txt",
    shell:
        "sleep 6; echo {{wildcards.i}} > {{output}}"
"""


def running_pod(observer, exclude: set[str], timeout: float = 180) -> dict:
    """A pod of the run currently Running on a node, other than those in `exclude`."""

    def found() -> dict | None:
        for (kind, name), pod in observer.seen.latest():
            status = pod.get("status") or {}
            if (
                kind == "Pod"
                and name not in exclude
                and status.get("phase") == "Running"
                and (pod.get("spec") or {}).get("nodeName")
            ):
                return pod
        return None

    return wait_until(found, f"a running pod other than {sorted(exclude)}", timeout)


def test_evicted_pods_and_a_lost_node_are_retried_by_kubernetes_not_snakemake(
    chaos_runner, chaos_control, chaos_cluster, azurite, container, chaos_record
):
    pool = f"spot-{uuid.uuid4().hex[:6]}"
    pool_nodes = [f"{pool}-{side}" for side in ("a", "b")]
    for name in pool_nodes:
        chaos_control.add_node(
            {"name": name, "cpu": "64", "memory": "256Gi", "labels": {POOL_LABEL: pool}}
        )
    try:
        run_disruption_scenario(
            chaos_runner, chaos_control, chaos_cluster, azurite, container, chaos_record, pool
        )
    finally:
        # Later scenarios must not find room on this pool: the load scenario caps its slots.
        for name in set(pool_nodes) & set(chaos_control.nodes()):
            chaos_control.lose_node(name, remove=True)


def run_disruption_scenario(
    chaos_runner, chaos_control, chaos_cluster, azurite, container, chaos_record, pool: str
) -> None:
    disrupted: list[str] = []
    lost_nodes: list[str] = []

    def disrupt(observer) -> None:
        evicted = running_pod(observer, exclude=set())
        chaos_control.evict_pod("default", evicted["metadata"]["name"])
        disrupted.append(evicted["metadata"]["name"])
        victim = running_pod(observer, exclude=set(disrupted))
        node = victim["spec"]["nodeName"]
        on_node = chaos_control.lose_node(node)
        lost_nodes.append(node)
        disrupted.extend(on_node["pods"])

    run = chaos_runner.run(
        SLOW_SNAKEFILE,
        jobs=SLOW_JOBS,
        extra_args=(
            "--kubernetes-node-selector",
            f"{POOL_LABEL}={pool}",
            "--kubernetes-disruption-retries",
            "3",
            "--retries",
            "0",
        ),
        while_running=disrupt,
        name="disrupt",
    )

    assert run.returncode == 0, run.output[-5000:]
    assert_each_job_finished_once(run.output, "slow", SLOW_JOBS)
    assert_outputs(azurite, container, "slow", SLOW_JOBS)
    pods = run.observed.of_kind("Pod")
    failed = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Failed"]
    assert len(set(disrupted)) >= 2, disrupted
    assert sorted(failed) == sorted(set(disrupted)), (failed, disrupted)
    # one new pod per disrupted one; Jobs were created once each
    assert len(pods) == SLOW_JOBS + len(failed)
    assert (
        request_figures(chaos_control.requests(user_agent=EXECUTOR_USER_AGENT))["job_creates"]
        == SLOW_JOBS
    )
    assert run.output.count(RETRY_NOTICE) == len(failed), run.output[-5000:]
    assert SNAKEMAKE_RETRY not in run.output
    survivors = [p for p in pods if p["metadata"]["name"] not in failed]
    assert all(p["spec"]["nodeName"] not in lost_nodes for p in survivors)
    assert run.leftovers == set()
    leaked = run_objects(chaos_cluster.kubeconfig, run_id_of(run.output))
    assert leaked == []
    secrets = [azurite.account_key, *chaos_runner.secret_env.values()]
    assert secret_leaks(run, secrets) == []
    chaos_record(
        jobs=SLOW_JOBS,
        evictions=1,
        nodes_lost=len(lost_nodes),
        pods_disrupted=len(failed),
        retries_by_kubernetes=len(failed),
        snakemake_retries_used=0,
        jobs_completed=SLOW_JOBS,
        objects_leaked=len(leaked) + len(run.leftovers),
        secrets_leaked=0,
    )
