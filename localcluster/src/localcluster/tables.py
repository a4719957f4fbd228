"""Server-side printing (meta.k8s.io/v1 Table) for ``kubectl get``, with the columns a 1.30
server prints for pods, jobs, nodes, events, namespaces, resource quotas, role bindings and
service accounts (pkg/printers/internalversion/printers.go) and NAME/AGE for everything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from localcluster.kinds import Kind


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(int((datetime.now(UTC) - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def _column(name: str, kind: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


def pod_status_reason(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            terminated = state["terminated"]
            reason = terminated.get("reason") or f"ExitCode:{terminated.get('exitCode', 0)}"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        pod_status_reason(pod),
        restarts,
        _age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        pod.get("spec", {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _job_row(job: dict[str, Any]) -> list[Any]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    conditions = {c["type"] for c in status.get("conditions") or [] if c.get("status") == "True"}
    state = (
        "Complete"
        if "Complete" in conditions
        else "Failed"
        if "Failed" in conditions
        else "Suspended"
        if spec.get("suspend")
        else "Running"
    )
    duration = ""
    if status.get("startTime"):
        end = status.get("completionTime")
        start = datetime.strptime(status["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        finish = (
            datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            if end
            else datetime.now(UTC)
        )
        duration = f"{max(int((finish - start).total_seconds()), 0)}s"
    containers = spec.get("template", {}).get("spec", {}).get("containers") or []
    return [
        job["metadata"]["name"],
        state,
        f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}",
        duration,
        _age(job["metadata"].get("creationTimestamp")),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        ",".join(
            f"{k}={v}" for k, v in (spec.get("selector") or {}).get("matchLabels", {}).items()
        ),
    ]


def _columns(kind: Kind) -> list[dict[str, Any]]:
    if kind.resource == "pods":
        return [
            _column("Name", fmt="name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "string"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
            _column("Nominated Node", priority=1),
            _column("Readiness Gates", priority=1),
        ]
    if kind.resource == "jobs":
        return [
            _column("Name", fmt="name"),
            _column("Status"),
            _column("Completions"),
            _column("Duration"),
            _column("Age"),
            _column("Containers", priority=1),
            _column("Images", priority=1),
            _column("Selector", priority=1),
        ]
    if kind.resource == "namespaces":
        return [_column("Name", fmt="name"), _column("Status"), _column("Age")]
    if kind.resource == "events":
        return [
            _column("Last Seen"),
            _column("Type"),
            _column("Reason"),
            _column("Object"),
            _column("Source", priority=1),
            _column("Message"),
            _column("First Seen", priority=1),
            _column("Count", "integer", priority=1),
            _column("Name", fmt="name", priority=1),
        ]
    if kind.resource == "nodes":
        return [
            _column("Name", fmt="name"),
            _column("Status"),
            _column("Roles"),
            _column("Age"),
            _column("Version"),
        ]
    if kind.resource == "resourcequotas":
        return [_column("Name", fmt="name"), _column("Age"), _column("Request"), _column("Limit")]
    if kind.resource in ("rolebindings", "clusterrolebindings"):
        return [
            _column("Name", fmt="name"),
            _column("Role"),
            _column("Age"),
            _column("Users", priority=1),
            _column("Groups", priority=1),
            _column("ServiceAccounts", priority=1),
        ]
    if kind.resource == "serviceaccounts":
        return [_column("Name", fmt="name"), _column("Secrets", "integer"), _column("Age")]
    return [_column("Name", fmt="name"), _column("Age")]


def _quota_row(quota: dict[str, Any]) -> list[Any]:
    """printers.go printResourceQuota: "resource: used/hard", requests and limits apart."""
    status = quota.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    requests, limits = [], []
    for name in sorted(hard):
        text = f"{name}: {used.get(name, '0')}/{hard[name]}"
        (limits if name.startswith("limits.") else requests).append(text)
    return [
        quota["metadata"]["name"],
        _age(quota["metadata"].get("creationTimestamp")),
        ", ".join(requests),
        ", ".join(limits),
    ]


def _binding_row(binding: dict[str, Any]) -> list[Any]:
    """printers.go printRoleBinding: Role as KIND/NAME; subjects by kind in the wide columns."""
    ref = binding.get("roleRef") or {}
    subjects = binding.get("subjects") or []

    def names(kind: str) -> str:
        found = [
            (f"{s.get('namespace')}/{s['name']}" if kind == "ServiceAccount" else s["name"])
            for s in subjects
            if s.get("kind") == kind and s.get("name")
        ]
        return ", ".join(found)

    return [
        binding["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _age(binding["metadata"].get("creationTimestamp")),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


def _node_row(node: dict[str, Any]) -> list[Any]:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [
        node["metadata"]["name"],
        state,
        "<none>",
        _age(node["metadata"].get("creationTimestamp")),
        version,
    ]


def _row(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    if kind.resource == "pods":
        cells = _pod_row(obj)
    elif kind.resource == "jobs":
        cells = _job_row(obj)
    elif kind.resource == "nodes":
        cells = _node_row(obj)
    elif kind.resource == "events":
        involved = obj.get("involvedObject") or {}
        cells = [
            _age(obj.get("lastTimestamp")),
            obj.get("type", ""),
            obj.get("reason", ""),
            f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
            (obj.get("source") or {}).get("component", ""),
            obj.get("message", ""),
            _age(obj.get("firstTimestamp")),
            obj.get("count", 1),
            obj["metadata"]["name"],
        ]
    elif kind.resource == "namespaces":
        cells = [
            obj["metadata"]["name"],
            (obj.get("status") or {}).get("phase", "Active"),
            _age(obj["metadata"].get("creationTimestamp")),
        ]
    elif kind.resource == "resourcequotas":
        cells = _quota_row(obj)
    elif kind.resource in ("rolebindings", "clusterrolebindings"):
        cells = _binding_row(obj)
    elif kind.resource == "serviceaccounts":
        cells = [
            obj["metadata"]["name"],
            len(obj.get("secrets") or []),
            _age(obj["metadata"].get("creationTimestamp")),
        ]
    else:
        cells = [obj["metadata"]["name"], _age(obj["metadata"].get("creationTimestamp"))]
    return {
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        },
    }


def table(kind: Kind, objects: list[dict[str, Any]], metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": _columns(kind),
        "rows": [_row(kind, obj) for obj in objects],
    }
