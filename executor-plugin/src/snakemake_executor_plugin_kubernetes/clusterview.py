"""Reads, only while some pod of the run is unschedulable, what explains it: the
cluster-autoscaler's events in the namespace, whether its status ConfigMap exists, and the
nodes. At most one read of each per REFRESH_SECONDS, so a long wait costs a few requests a
minute. A 403 (a least-privilege Role without nodes or kube-system access) is remembered: the
diagnosis does without that source, and undecidable waits end at
--kubernetes-unschedulable-timeout as before.
"""

import sys
from collections.abc import Callable
from typing import Any

from snakemake_executor_plugin_kubernetes.cachefields import name_of, version_of
from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient
from snakemake_executor_plugin_kubernetes.placement import (
    AUTOSCALER_POD_REASONS,
    ClusterFacts,
    Diagnosis,
    diagnose,
    event_order,
)

REFRESH_SECONDS = 10.0
FORBIDDEN_RETRY_SECONDS = 600.0
STATUS_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/cluster-autoscaler-status"
NODES = "/api/v1/nodes"
AUTOSCALER_COMPONENT = "cluster-autoscaler"
EVENT_PAGE_SIZE = 500
MAX_EVENT_PAGES = 10  # events expire after an hour; more than 5,000 of them is a busy namespace


def _event_fields(event: dict[str, Any]) -> dict[str, Any]:
    """What a diagnosis reads of an event; the message is shared by the many pods that
    one scale-up decision is about."""
    kept: dict[str, Any] = {
        field: event[field]
        for field in ("reason", "lastTimestamp", "eventTime")
        if event.get(field) is not None
    }
    kept["message"] = sys.intern(event.get("message") or "")
    version = (event.get("metadata") or {}).get("resourceVersion")
    if version is not None:
        kept["metadata"] = {"resourceVersion": version}
    return kept


def is_unschedulable(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending") or (pod.get("spec") or {}).get("nodeName"):
        return False
    return any(
        c.get("type") == "PodScheduled"
        and c.get("status") == "False"
        and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


class ClusterView:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        on_forbidden: Callable[[str], None] | None = None,
        no_autoscaler_grace: float = 60,
    ) -> None:
        self.no_autoscaler_grace = no_autoscaler_grace
        self.client = client
        self.namespace = namespace
        self.on_forbidden = on_forbidden
        self.facts = ClusterFacts()
        self._read_at: float | None = None
        self._forbidden_at: dict[str, float] = {}
        self._cache: dict[str, tuple[str, Diagnosis]] = {}  # pod: (resourceVersion, diagnosis)
        # Thousands of pods of a rule wait for the same reason: one Diagnosis for them all.
        self._equal: dict[Diagnosis, Diagnosis] = {}

    def diagnose(self, pods: list[dict[str, Any]], now: float) -> dict[str, Diagnosis]:
        """Diagnoses of the unschedulable pods, by pod name."""
        pods = [pod for pod in pods if is_unschedulable(pod)]
        if not pods:
            return {}
        if self._read_at is None or now - self._read_at >= REFRESH_SECONDS:
            self._read_at = now
            self._refresh(now)
            self._cache.clear()
            self._equal.clear()
        found = {}
        for pod in pods:
            name = name_of(pod)
            version = version_of(pod)
            cached = self._cache.get(name)
            if cached is None or cached[0] != version:
                # Diagnosing compares the pod with every node: once per pod change or refresh,
                # not in every status round.
                diagnosis = diagnose(pod, self.facts, self.no_autoscaler_grace)
                cached = (version, self._equal.setdefault(diagnosis, diagnosis))
                self._cache[name] = cached
            found[name] = cached[1]
        for name in [n for n in self._cache if n not in found]:
            del self._cache[name]
        return found

    def _refresh(self, now: float) -> None:
        # Each page is folded in as it comes: with 10,000 Pending pods the autoscaler's
        # events are thousands of objects, read every REFRESH_SECONDS; only the latest of
        # each pod, and only the fields a diagnosis reads, are kept.
        latest: dict[str, dict[str, Any]] = {}
        token = None
        for _ in range(MAX_EVENT_PAGES):
            query: list[tuple[str, Any]] = [
                ("fieldSelector", f"source={AUTOSCALER_COMPONENT}"),
                ("limit", EVENT_PAGE_SIZE),
            ]
            if token:
                query.append(("continue", token))
            page = self._read("events", f"/api/v1/namespaces/{self.namespace}/events", now, query)
            for event in (page or {}).get("items") or []:
                involved = event.get("involvedObject") or {}
                if involved.get("kind") != "Pod" or event.get("reason") not in (
                    AUTOSCALER_POD_REASONS
                ):
                    continue
                kept = _event_fields(event)
                name = involved.get("name", "")
                if name not in latest or event_order(kept) >= event_order(latest[name]):
                    latest[name] = kept
            token = ((page or {}).get("metadata") or {}).get("continue")
            if not token:
                break
        self.facts.events = {name: [event] for name, event in latest.items()}
        status = self._read("the autoscaler's status ConfigMap", STATUS_CONFIGMAP, now)
        self.facts.autoscaler = None if status is None else bool(status)
        nodes = self._read("nodes", NODES, now)
        self.facts.nodes = None if nodes is None else list(nodes.get("items") or [])

    def _read(
        self, what: str, path: str, now: float, query: list[tuple[str, Any]] | None = None
    ) -> dict[str, Any] | None:
        """The object or list; {} when it does not exist (404); None when unreadable."""
        since = self._forbidden_at.get(path)
        if since is not None and now - since < FORBIDDEN_RETRY_SECONDS:
            return None
        try:
            return self.client.request("GET", path, query=query or [])
        except ApiError as error:
            if error.status == 404:
                return {}
            if error.status in (401, 403):
                if since is None and self.on_forbidden is not None:
                    self.on_forbidden(
                        f"cannot read {what} ({error}); unschedulable pods are diagnosed "
                        "without it, and one that may never fit waits "
                        "--kubernetes-unschedulable-timeout. To allow it: "
                        f"kubectl auth can-i {self._can_i(path)}"
                    )
                self._forbidden_at[path] = now
            return None

    def _can_i(self, path: str) -> str:
        if path == NODES:
            return "list nodes"
        if path == STATUS_CONFIGMAP:
            return "get configmaps/cluster-autoscaler-status -n kube-system"
        return f"list events -n {self.namespace}"
