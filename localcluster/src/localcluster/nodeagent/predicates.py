"""Pure scheduling rules: does a pod fit a node, and why not (in the real scheduler's words)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from localcluster.quantity import parse_quantity

Resources = dict[str, Decimal]

UNSCHEDULABLE_NODE = "node(s) were unschedulable"
AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
# Failures that evicting lower-priority pods could not fix (UnschedulableAndUnresolvable).
_UNRESOLVABLE_PREFIXES = (UNSCHEDULABLE_NODE, AFFINITY_MISMATCH, "node(s) had untolerated taint")


def container_requests(container: dict[str, Any]) -> Resources:
    """Requests, defaulting each one to its limit as the API server's defaulting does."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: parse_quantity(value) for name, value in merged.items()}


def pod_requests(pod: dict[str, Any]) -> Resources:
    spec = pod.get("spec") or {}
    total: Resources = {"pods": Decimal(1)}
    for container in spec.get("containers") or []:
        for name, amount in container_requests(container).items():
            total[name] = total.get(name, Decimal(0)) + amount
    for container in spec.get("initContainers") or []:
        for name, amount in container_requests(container).items():
            total[name] = max(total.get(name, Decimal(0)), amount)
    return total


def add_resources(into: Resources, amounts: Resources, sign: int = 1) -> None:
    for name, amount in amounts.items():
        into[name] = into.get(name, Decimal(0)) + sign * amount


def _expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator", "")
    values = expression.get("values") or []
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        try:
            actual, bound = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return actual > bound if operator == "Gt" else actual < bound
    return False


def term_matches(term: dict[str, Any], node: dict[str, Any]) -> bool:
    """A NodeSelectorTerm: all matchExpressions (labels) and matchFields (name) hold."""
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    expressions = term.get("matchExpressions") or []
    field_expressions = term.get("matchFields") or []
    if not expressions and not field_expressions:
        return False  # an empty term matches no objects
    return all(_expression_matches(e, labels) for e in expressions) and all(
        _expression_matches(e, fields) for e in field_expressions
    )


def _node_affinity(pod: dict[str, Any]) -> dict[str, Any]:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def matches_node_selection(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required:
        terms = required.get("nodeSelectorTerms") or []
        return any(term_matches(term, node) for term in terms)
    return True


def preferred_affinity_score(pod: dict[str, Any], node: dict[str, Any]) -> int:
    preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(
        int(item.get("weight", 0))
        for item in preferred
        if term_matches(item.get("preference") or {}, node)
    )


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(toleration, taint) for toleration in tolerations):
            return taint
    return None


def insufficient_resources(requests: Resources, free: Resources) -> list[str]:
    reasons = []
    for name, amount in requests.items():
        if amount <= 0:
            continue
        if amount > free.get(name, Decimal(0)):
            reasons.append("Too many pods" if name == "pods" else f"Insufficient {name}")
    return reasons


def misfit_reasons(
    pod: dict[str, Any], node: dict[str, Any], requests: Resources, free: Resources
) -> list[str]:
    """Why the pod cannot go on the node; empty when it fits. First failing filter only,
    in the default scheduler's filter order."""
    if (node.get("spec") or {}).get("unschedulable"):
        return [UNSCHEDULABLE_NODE]
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    if not matches_node_selection(pod, node):
        return [AFFINITY_MISMATCH]
    return insufficient_resources(requests, free)


def _histogram(reasons: Iterable[str]) -> str:
    counts = Counter(reasons)
    return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))


def unschedulable_message(node_count: int, reasons_by_node: dict[str, list[str]]) -> str:
    """The FailedScheduling message, shaped like kube-scheduler's FitError."""
    if node_count == 0:
        return "no nodes available to schedule pods"
    all_reasons = [reason for reasons in reasons_by_node.values() for reason in reasons]
    preemption = []
    for reasons in reasons_by_node.values():
        if any(reason.startswith(_UNRESOLVABLE_PREFIXES) for reason in reasons):
            preemption.append("Preemption is not helpful for scheduling")
        else:
            preemption.append("No preemption victims found for incoming pod")
    return (
        f"0/{node_count} nodes are available: {_histogram(all_reasons)}. "
        f"preemption: 0/{node_count} nodes are available: {_histogram(preemption)}."
    )
