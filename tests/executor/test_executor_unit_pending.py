"""What the log says of Pending pods: one by one while few, summed up when many."""

from __future__ import annotations

from snakemake_executor_plugin_kubernetes.pending import pending_lines

TAINT = "waiting for a node: node(s) had untolerated taint {node.kubernetes.io/unschedulable: }"
SCALE_UP = "waiting for a node: scale-up of nodepool1 1->2 triggered"


def job(i: int) -> str:
    return f"rule step (jobid {i}, Kubernetes Job sm-step-{i}-1)"


def test_few_pending_pods_are_told_one_by_one() -> None:
    lines = pending_lines([(job(1), "p1", TAINT), (job(2), "p2", SCALE_UP)])
    assert lines == [
        f"{job(1)}: pod p1 is pending: {TAINT}",
        f"{job(2)}: pod p2 is pending: {SCALE_UP}",
    ]


def test_thousands_waiting_for_the_same_reason_are_one_line() -> None:
    waiting = [(job(i), f"p{i}", TAINT) for i in range(10_000)]
    waiting.insert(5, (job(-1), "other", SCALE_UP))
    lines = pending_lines(waiting)
    assert lines == [
        f"10000 pods are pending: {TAINT} (e.g. p0, p1, p2, ...)",
        f"{job(-1)}: pod other is pending: {SCALE_UP}",
    ]


def test_nothing_new_is_nothing_told() -> None:
    assert pending_lines([]) == []
