"""Job outcome decisions from Job and Pod status, with the submitter's clock injected."""

from __future__ import annotations

import tracemalloc
from typing import Any

from snakemake_executor_plugin_kubernetes.occupancy import OccupancyClock
from snakemake_executor_plugin_kubernetes.outcomes import JobTracker, VerdictState, judge
from support.job_states import LIMITS, job, pod, waiting

UNSCHEDULABLE = {
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity.",
        }
    ]
}


def test_unschedulable_fails_only_after_the_timeout_with_the_scheduler_message():
    tracker = JobTracker()
    pending = [pod(**UNSCHEDULABLE)]
    assert judge(job(), pending, LIMITS, tracker, now=1000.0).state == "running"
    assert judge(job(), pending, LIMITS, tracker, now=1600.0).state == "running"
    verdict = judge(job(), pending, LIMITS, tracker, now=1600.5)
    assert verdict.state == "failed" and verdict.delete_job
    assert verdict.message.startswith("Unschedulable")
    assert "0/2 nodes are available" in verdict.message
    assert "--kubernetes-unschedulable-timeout=600s" in verdict.message


def test_unschedulable_pods_queue_while_other_pods_of_the_run_are_on_nodes():
    """A cluster at its autoscaler maximum: pods wait hours for slots, which is no failure."""
    tracker = JobTracker()
    pending = [pod(**UNSCHEDULABLE)]
    assert judge(job(), pending, LIMITS, tracker, now=0.0, last_occupied=0.0).state == "running"
    # hours later, and another pod of the run was on a node in the last status round
    verdict = judge(job(), pending, LIMITS, tracker, now=7200.0, last_occupied=7199.0)
    assert verdict.state == "running"
    # no pod of the run on a node for longer than the timeout: stuck, not queued
    verdict = judge(job(), pending, LIMITS, tracker, now=7799.5, last_occupied=7199.0)
    assert verdict.state == "failed" and verdict.delete_job
    assert "with no other pod of this run on a node" in verdict.message
    assert "--kubernetes-unschedulable-timeout=600s" in verdict.message


def test_occupancy_before_the_pod_waited_does_not_extend_its_timeout():
    tracker = JobTracker()
    pending = [pod(**UNSCHEDULABLE)]
    assert judge(job(), pending, LIMITS, tracker, now=1000.0, last_occupied=10.0).state == (
        "running"
    )
    verdict = judge(job(), pending, LIMITS, tracker, now=1600.5, last_occupied=10.0)
    assert verdict.state == "failed"


def placed(phase: str, node: str | None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase},
    }


def test_occupancy_clock_counts_only_unfinished_pods_on_nodes():
    clock = OccupancyClock()
    clock.observe([placed("Pending", None)], now=1.0)
    assert clock.last_occupied is None
    clock.observe([placed("Pending", "node-1")], now=2.0)
    assert clock.last_occupied == 2.0
    clock.observe([placed("Running", "node-1"), placed("Pending", None)], now=3.0)
    assert clock.last_occupied == 3.0
    clock.observe([placed("Succeeded", "node-1"), placed("Failed", "node-2")], now=4.0)
    assert clock.last_occupied == 3.0
    clock.observe([], now=5.0)
    assert clock.last_occupied == 3.0


def test_image_pull_errors_count_as_one_stall_and_reset_when_resolved():
    tracker = JobTracker()
    assert judge(job(), [pod(**waiting("ErrImagePull"))], LIMITS, tracker, 0.0).state == "running"
    back_off = [pod(**waiting("ImagePullBackOff", "Back-off pulling image"))]
    assert judge(job(), back_off, LIMITS, tracker, 100.0).state == "running"
    running = [pod(phase="Running")]
    assert judge(job(), running, LIMITS, tracker, 150.0).state == "running"
    # the stall was cleared: a new one starts its own grace period
    assert judge(job(), back_off, LIMITS, tracker, 200.0).state == "running"
    assert judge(job(), back_off, LIMITS, tracker, 380.0).state == "running"
    verdict = judge(job(), back_off, LIMITS, tracker, 380.5)
    assert verdict.state == "failed" and verdict.delete_job
    assert "ImagePullBackOff" in verdict.message and "img:1" in verdict.message


def test_create_container_config_error_names_the_cause():
    tracker = JobTracker()
    stuck = [pod(**waiting("CreateContainerConfigError", 'secret "e2-no-such-secret" not found'))]
    judge(job(), stuck, LIMITS, tracker, 0.0)
    verdict = judge(job(), stuck, LIMITS, tracker, 181.0)
    assert verdict.state == "failed"
    assert "CreateContainerConfigError" in verdict.message
    assert "e2-no-such-secret" in verdict.message


def test_success_and_vanished_job():
    done = judge(
        job({"type": "Complete", "status": "True"}),
        [pod(phase="Succeeded")],
        LIMITS,
        JobTracker(),
        0.0,
    )
    assert done.state is VerdictState.SUCCEEDED and done.pod == "sm-x-1-a"
    gone = judge(None, [], LIMITS, JobTracker(), 0.0)
    assert gone.state is VerdictState.FAILED and "deleted" in gone.message
    # The states compare equal to their former strings (code that tests those still works).
    assert judge(job(), [pod()], LIMITS, JobTracker(), 0.0).state == "running"


def test_oom_and_deadline_and_failure_target():
    oom = pod(
        phase="Failed",
        containerStatuses=[
            {
                "name": "snakemake",
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            }
        ],
    )
    failed = {"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy"}
    verdict = judge(job(failed), [oom], LIMITS, JobTracker(), 0.0)
    assert verdict.state == "failed"
    assert "OOMKilled" in verdict.message and "500M" in verdict.message
    assert "exit code 137" in verdict.message

    deadline = pod(phase="Failed", reason="DeadlineExceeded", message="too long")
    verdict = judge(job(), [deadline], LIMITS, JobTracker(), 0.0)
    assert "DeadlineExceeded" in verdict.message and "2 min" in verdict.message


def test_disruptions_within_budget_notify_once_then_fail_beyond():
    tracker = JobTracker()
    target = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": "preempted by a higher priority pod",
    }
    first = pod("p1", phase="Failed", conditions=[target])
    replacement = pod("p2", phase="Running")
    verdict = judge(job(), [first, replacement], LIMITS, tracker, 0.0)
    assert verdict.state == "running"
    (notice,) = verdict.notices
    assert "p1" in notice and "node-2" in notice and "preempted" in notice
    assert "1 of 2" in notice
    assert judge(job(), [first, replacement], LIMITS, tracker, 1.0).notices == []

    gone = pod("p0", phase="Running")  # deleted while running, e.g. lost with its node
    second = pod("p2", phase="Failed", conditions=[target])
    verdict = judge(job(), [first, second], LIMITS, tracker, 2.0, gone=[gone])
    assert verdict.state == "failed" and verdict.delete_job
    assert "disrupted 3 times" in verdict.message
    assert len(verdict.notices) == 2 and "no disruption retries left" in verdict.notices[-1]


def test_a_tracker_holds_nothing_until_its_job_stalls_or_is_disrupted():
    """A run holds a tracker per active job (10,000 Pending at once); most never need one."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        trackers = [JobTracker() for _ in range(1000)]
        per_tracker = (tracemalloc.get_traced_memory()[0] - before) / len(trackers)
    finally:
        tracemalloc.stop()
    assert per_tracker < 100  # bytes: the object alone; it was 440 with three empty containers
    tracker = trackers[0]
    assert tracker.stalled_for("p", "image", 10.0) == 0.0
    assert tracker.stalled_for("p", "image", 25.0) == 15.0
    assert tracker.first_notice("j", "quota", 25.0) and not tracker.first_notice("j", "quota", 26)
    assert (tracker.disrupted("p"), tracker.disrupted("p"), tracker.disrupted("q")) == (1, None, 2)
    tracker.told("p", "waiting for a node")
    assert tracker.reason_told("p") == "waiting for a node"
    tracker.forget_reason("p")
    assert tracker.reason_told("p") is None


def test_a_waiting_jobs_tracker_is_small():
    """10,000 Pending jobs: each tracker knows since when its pod waits and what it told."""
    names = [f"sm-run-{i}-pod" for i in range(1000)]
    reason = "0/3 nodes are available: 3 Insufficient cpu."
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        trackers = []
        for name in names:
            tracker = JobTracker()
            tracker.stalled_for(name, "unschedulable", 5.0)
            tracker.told(name, reason)
            trackers.append(tracker)
        per_tracker = (tracemalloc.get_traced_memory()[0] - before) / len(trackers)
    finally:
        tracemalloc.stop()
    assert per_tracker < 360  # bytes; 530 with a dict per kind of entry
    tracker = trackers[0]
    assert tracker.stalled_for(names[0], "unschedulable", 7.5) == 2.5
    tracker.clear_other_stalls(names[0], "image")
    assert tracker.stalled_for(names[0], "unschedulable", 9.0) == 0.0
    tracker.told(names[0], "another reason")
    assert tracker.reason_told(names[0]) == "another reason"
