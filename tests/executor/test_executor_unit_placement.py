"""Scheduling diagnosis from the shapes a cluster reports: kube-scheduler's FailedScheduling
condition, cluster-autoscaler's TriggeredScaleUp / NotTriggerScaleUp events (wording of
kubernetes/autoscaler processors/status/eventing_scale_up_processor.go), and nodes."""

from __future__ import annotations

from typing import Any

from snakemake_executor_plugin_kubernetes.outcomes import JobTracker, Limits, judge
from snakemake_executor_plugin_kubernetes.placement import ClusterFacts, diagnose
from support.placement_objects import D3, GROUP, NAME, SYSTEM, event, unschedulable_pod


def test_scale_up_in_progress_is_reported_with_pool_and_sizes() -> None:
    facts = ClusterFacts(
        autoscaler=True,
        events={
            NAME: [
                event(
                    "TriggeredScaleUp",
                    f"pod triggered scale-up: [{{{GROUP} 1->2 (max: 3)}}]",
                )
            ]
        },
    )
    found = diagnose(unschedulable_pod({"cpu": "2"}), facts)
    assert found.text == "waiting for a node: scale-up of nodepool1 1->2 triggered"
    assert not found.never


def test_no_pool_can_hold_it_is_final_and_names_resource_largest_node_and_setting() -> None:
    facts = ClusterFacts(
        autoscaler=True,
        nodes=[D3, SYSTEM],
        events={
            NAME: [
                event("TriggeredScaleUp", f"pod triggered scale-up: [{{{GROUP} 1->2 (max: 3)}}]"),
                event(
                    "NotTriggerScaleUp",
                    "pod didn't trigger scale-up: 1 Insufficient cpu, "
                    "1 node(s) had untolerated taint {CriticalAddonsOnly: true}",
                    "2026-01-01T00:00:09Z",
                ),
            ]
        },
    )
    found = diagnose(unschedulable_pod(), facts)
    assert found.never
    assert found.text.startswith("no node has 30.4 CPUs free; autoscaler: no pool can hold it")
    assert "(Insufficient cpu, node(s) had untolerated taint {CriticalAddonsOnly: true})" in (
        found.text
    )
    assert "it requests 30.4 CPUs" in found.failure
    assert f"the largest node, {GROUP}000000 (pool nodepool1, Standard_D3_v2)" in found.failure
    assert "has 3.86 CPUs allocatable" in found.failure
    assert "Lower the rule's threads" in found.failure


def test_gpu_and_selector_no_pool_has() -> None:
    gpu = diagnose(
        unschedulable_pod({"cpu": "1", "nvidia.com/gpu": "1"}),
        ClusterFacts(
            autoscaler=True,
            nodes=[D3],
            events={
                NAME: [
                    event(
                        "NotTriggerScaleUp",
                        "pod didn't trigger scale-up: 2 Insufficient nvidia.com/gpu",
                    )
                ]
            },
        ),
    )
    assert gpu.never
    assert "it requests 1 nvidia.com/gpu" in gpu.failure
    assert "has no nvidia.com/gpu allocatable" in gpu.failure
    assert "the rule's gpu resource" in gpu.failure

    selector = {"node.kubernetes.io/instance-type": "Standard_E64s_v5"}
    mismatch = diagnose(
        unschedulable_pod({"cpu": "1"}, nodeSelector=selector),
        ClusterFacts(
            autoscaler=True,
            nodes=None,  # nodes unreadable (403): the autoscaler's word suffices
            events={
                NAME: [
                    event(
                        "NotTriggerScaleUp",
                        "pod didn't trigger scale-up: "
                        "2 node(s) didn't match Pod's node affinity/selector",
                    )
                ]
            },
        ),
    )
    assert mismatch.never
    assert "node.kubernetes.io/instance-type=Standard_E64s_v5" in mismatch.failure
    assert "machine_type" in mismatch.failure


def test_pools_at_max_are_final_only_when_no_existing_node_could_hold_the_pod() -> None:
    at_max = [
        event(
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 1 max node group size reached, "
            "1 node(s) had untolerated taint {CriticalAddonsOnly: true}",
        )
    ]
    fits_when_free = diagnose(
        unschedulable_pod({"cpu": "3"}),
        ClusterFacts(autoscaler=True, nodes=[D3, SYSTEM], events={NAME: at_max}),
    )
    assert not fits_when_free.never
    assert "every pool that could hold it is at its max" not in fits_when_free.text
    too_big = diagnose(
        unschedulable_pod({"cpu": "8"}),
        ClusterFacts(autoscaler=True, nodes=[D3, SYSTEM], events={NAME: at_max}),
    )
    assert too_big.never
    unknown_nodes = diagnose(
        unschedulable_pod({"cpu": "8"}),
        ClusterFacts(autoscaler=True, nodes=None, events={NAME: at_max}),
    )
    assert not unknown_nodes.never  # undecidable: the timeout decides


def test_without_autoscaler_a_pod_no_node_could_hold_is_final_after_a_grace() -> None:
    facts = ClusterFacts(autoscaler=False, nodes=[D3, SYSTEM])
    found = diagnose(unschedulable_pod(), facts, no_autoscaler_grace=60)
    assert found.never and found.grace == 60
    assert "no cluster-autoscaler" in found.failure
    assert "has 3.86 CPUs allocatable" in found.failure
    assert not diagnose(unschedulable_pod({"cpu": "2"}), facts).never
    # Without the right to read the autoscaler's status or the nodes: undecidable.
    assert not diagnose(unschedulable_pod(), ClusterFacts(autoscaler=None, nodes=[D3])).never
    assert not diagnose(unschedulable_pod(), ClusterFacts(autoscaler=False, nodes=None)).never


def job() -> dict[str, Any]:
    return {"metadata": {"name": "job-a"}, "spec": {}, "status": {}}


def test_judge_reports_each_new_reason_once_and_fails_a_final_one_at_once() -> None:
    tracker = JobTracker()
    limits = Limits(unschedulable_timeout=600)
    pod = unschedulable_pod()
    scale_up = ClusterFacts(
        autoscaler=True,
        events={
            NAME: [
                event("TriggeredScaleUp", f"pod triggered scale-up: [{{{GROUP} 1->2 (max: 3)}}]")
            ]
        },
    )
    first = judge(job(), [pod], limits, tracker, 0.0, diagnoses={NAME: diagnose(pod, scale_up)})
    assert first.state == "running"
    assert first.waiting == [(NAME, "waiting for a node: scale-up of nodepool1 1->2 triggered")]
    again = judge(job(), [pod], limits, tracker, 5.0, diagnoses={NAME: diagnose(pod, scale_up)})
    assert again.waiting == []
    never = ClusterFacts(
        autoscaler=True,
        nodes=[D3],
        events={
            NAME: [event("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 Insufficient cpu")]
        },
    )
    final = judge(job(), [pod], limits, tracker, 9.0, diagnoses={NAME: diagnose(pod, never)})
    assert final.state == "failed" and final.delete_job
    assert final.message.startswith(f"Unschedulable: no node pool can ever hold pod {NAME}")
