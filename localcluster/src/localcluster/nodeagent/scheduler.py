"""The scheduler part of the node agent: binds Pending pods to nodes with room for them."""

from __future__ import annotations

import contextlib
import time
from decimal import Decimal
from typing import Any

from localcluster.errors import ApiError
from localcluster.nodeagent import podstatus, predicates
from localcluster.nodeagent.predicates import Resources
from localcluster.quantity import parse_quantity

COMPONENT = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")
# A pod that fits no node waits, as in kube-scheduler's unschedulable pod pool, until the
# cluster changes in a way that may make room (a node added or changed, a pod leaving a
# node), or at the latest this long (podMaxInUnschedulablePodsDuration, 5 minutes, in
# kubernetes pkg/scheduler/internal/queue/scheduling_queue.go). Without it, every new
# pod's pass re-tried every waiting pod: 10,000 Pending pods cost 10,000 tries each.
UNSCHEDULABLE_RETRY_SECONDS = 300.0


def node_allocatable(node: dict[str, Any]) -> Resources:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return {name: parse_quantity(value) for name, value in allocatable.items()}


def occupies_node(pod: dict[str, Any]) -> bool:
    return (
        bool((pod.get("spec") or {}).get("nodeName"))
        and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
    )


def wants_scheduling(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
        and "deletionTimestamp" not in pod["metadata"]
    )


class Scheduler:
    """Keeps a view of pods and nodes (fed from the store's events) and binds pods."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._requests: dict[str, Resources] = {}
        self._last_failure: dict[str, str] = {}
        self._unschedulable: set[str] = set()  # uids that fit no node since the last change
        self._retry_all = False
        self._nodes_seen: dict[str, str | None] = {}
        self._retried_at = time.monotonic()
        # The pods that want a node and those holding one, kept as pods change, so that a
        # pass reads only those (not all 10,000 of a run's pods, in every pass).
        self._wanting: dict[tuple[str, str], dict[str, Any]] = {}
        self._placed: dict[tuple[str, str], dict[str, Any]] = {}

    def _track(self, key: tuple[str, str], pod: dict[str, Any] | None) -> None:
        if pod is None:
            self.pods.pop(key, None)
        else:
            self.pods[key] = pod
        for subset, belongs in ((self._wanting, wants_scheduling), (self._placed, occupies_node)):
            if pod is not None and belongs(pod):
                subset[key] = pod
            else:
                subset.pop(key, None)

    def observe_pod(self, event_type: str, pod: dict[str, Any]) -> bool:
        """Track a pod change; True when it could change a scheduling decision."""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        uid = pod["metadata"]["uid"]
        previous = self.pods.get(key)
        if event_type == "DELETED":
            self._track(key, None)
            self._requests.pop(uid, None)
            self._last_failure.pop(uid, None)
            self._unschedulable.discard(uid)
            freed = previous is not None and occupies_node(previous)
            self._retry_all = self._retry_all or freed
            return freed
        self._track(key, pod)
        if wants_scheduling(pod):
            return previous is None or not wants_scheduling(previous)
        self._unschedulable.discard(uid)
        freed = previous is not None and occupies_node(previous) and not occupies_node(pod)
        self._retry_all = self._retry_all or freed
        return freed

    def requests_of(self, pod: dict[str, Any]) -> Resources:
        uid = pod["metadata"]["uid"]
        if uid not in self._requests:
            self._requests[uid] = predicates.pod_requests(pod)
        return self._requests[uid]

    def free_by_node(self) -> dict[str, Resources]:
        free = {name: node_allocatable(node) for name, node in self.nodes.items()}
        for pod in self._placed.values():
            node_name = pod["spec"].get("nodeName")
            if node_name in free:
                predicates.add_resources(free[node_name], self.requests_of(pod), -1)
        return free

    def schedule_pending(self) -> list[tuple[dict[str, Any], str]]:
        """One scheduling pass over the pending pods, by priority then age; the bindings made.
        Pods that fit no node in an earlier pass wait for a change (see above)."""
        self._retry_unschedulable_on_change()
        pending = [
            pod
            for pod in self._wanting.values()
            if pod["metadata"]["uid"] not in self._unschedulable
        ]
        if not pending:
            return []
        pending.sort(
            key=lambda p: (-int(p["spec"].get("priority") or 0), p["metadata"]["creationTimestamp"])
        )
        free = self.free_by_node()
        bound = []
        for pod in pending:
            node_name = self._pick_node(pod, free)
            if node_name is None:
                self._unschedulable.add(pod["metadata"]["uid"])
                continue
            predicates.add_resources(free[node_name], self.requests_of(pod), -1)
            if self._bind(pod, node_name):
                bound.append((pod, node_name))
        return bound

    def _retry_unschedulable_on_change(self) -> None:
        nodes = {name: node["metadata"].get("resourceVersion") for name, node in self.nodes.items()}
        now = time.monotonic()
        if (
            self._retry_all
            or nodes != self._nodes_seen
            or now - self._retried_at >= UNSCHEDULABLE_RETRY_SECONDS
        ):
            self._unschedulable.clear()
            self._retry_all = False
            self._nodes_seen = nodes
            self._retried_at = now

    def _pick_node(self, pod: dict[str, Any], free: dict[str, Resources]) -> str | None:
        requests = self.requests_of(pod)
        reasons_by_node: dict[str, list[str]] = {}
        candidates = []
        for name, node in self.nodes.items():
            reasons = predicates.misfit_reasons(pod, node, requests, free[name])
            if reasons:
                reasons_by_node[name] = reasons
                continue
            allocatable_cpu = node_allocatable(node).get("cpu") or Decimal(1)
            load = 1 - free[name].get("cpu", Decimal(0)) / allocatable_cpu
            candidates.append((-predicates.preferred_affinity_score(pod, node), load, name))
        if candidates:
            return min(candidates)[2]
        self._report_unschedulable(pod, reasons_by_node)
        return None

    def _report_unschedulable(self, pod: dict[str, Any], reasons: dict[str, list[str]]) -> None:
        message = predicates.unschedulable_message(len(self.nodes), reasons)
        uid = pod["metadata"]["uid"]
        if self._last_failure.get(uid) == message:
            return  # the real scheduler backs off too; one event per distinct reason
        self._last_failure[uid] = message
        try:
            self.store.mutate(
                "pods",
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                lambda p: podstatus.set_condition(
                    p, "PodScheduled", False, "Unschedulable", message
                ),
            )
        except ApiError:  # the pod vanished meanwhile; nothing to report
            return
        self._event(pod, "FailedScheduling", message, "Warning")

    def _event(self, pod: dict[str, Any], reason: str, message: str, kind: str = "Normal") -> None:
        # Best effort, as in a real cluster: the namespace may be terminating.
        with contextlib.suppress(ApiError):
            self.store.record_event(pod, reason, message, kind, COMPONENT)

    def _bind(self, pod: dict[str, Any], node_name: str) -> bool:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]

        def bind(target: dict[str, Any]) -> None:
            target["spec"]["nodeName"] = node_name
            podstatus.set_condition(target, "PodScheduled", True)

        try:
            updated = self.store.mutate("pods", namespace, name, bind)
        except ApiError:  # deleted between the event and the pass
            return False
        self._track((namespace, name), updated)
        self._last_failure.pop(pod["metadata"]["uid"], None)
        self._event(
            updated, "Scheduled", f"Successfully assigned {namespace}/{name} to {node_name}"
        )
        return True
