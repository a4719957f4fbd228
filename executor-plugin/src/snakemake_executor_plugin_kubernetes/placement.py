"""Why a pod waits for a node, and whether it can ever get one.

Inputs are what a cluster tells anyone allowed to read it: the scheduler's PodScheduled
condition, the cluster-autoscaler's events on the pod (``TriggeredScaleUp``,
``NotTriggerScaleUp``), whether its status ConfigMap exists, and the nodes' allocatable
resources, labels and taints. Event wording is cluster-autoscaler's (kubernetes/autoscaler,
cluster-autoscaler/processors/status/eventing_scale_up_processor.go): "pod triggered
scale-up: [{GROUP 1->2 (max: 3)}]" and "pod didn't trigger scale-up: 2 Insufficient cpu,
1 max node group size reached".

A pod is *never* placeable when the autoscaler rejected every pool for a reason an empty
new node would not fix (Insufficient RESOURCE, node affinity/selector, an untolerated taint)
and, for pools at their max size, no existing node could hold it even empty; or when there
is no autoscaler and no node could hold it even empty. Anything else may still change.
"""

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from snakemake_executor_plugin_kubernetes.cachefields import name_of
from snakemake_executor_plugin_kubernetes.quantities import parse_quantity

MAX_SIZE_REACHED = "max node group size reached"
AFFINITY = "node(s) didn't match Pod's node affinity/selector"
TAINT_PREFIX = "node(s) had untolerated taint"
POOL_LABEL = "kubernetes.azure.com/agentpool"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
_SCALE_UP = re.compile(r"\{(\S+) (\d+)->(\d+) \(max: (\d+)\)\}")
_AKS_GROUP = re.compile(r"^aks-(.+)-\d+-vmss$")
# What a user changes for each resource the executor requests (see resources.py).
SETTING_FOR_RESOURCE = {
    "cpu": "the rule's threads (or resources: _cores; the request is threads x "
    "--kubernetes-cpu-scalar)",
    "memory": "the rule's mem_mb (and --kubernetes-memory-limit-scalar)",
    "ephemeral-storage": "the rule's disk_mb",
    "nvidia.com/gpu": "the rule's gpu resource",
    "amd.com/gpu": "the rule's gpu resource",
    "pods": "the node pool's max pods",
}


@dataclass
class ClusterFacts:
    """What the executor could read this round; None where it may not (403) or could not."""

    autoscaler: bool | None = None  # its status ConfigMap exists
    nodes: list[dict[str, Any]] | None = None
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by pod name


@dataclass(frozen=True)
class Diagnosis:
    text: str  # why it waits, for the user, as it changes
    never: bool = False  # no node can ever hold it
    failure: str = ""  # the failure message when `never`
    grace: float = 0.0  # seconds the pod must have been unschedulable before `never` counts


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {"pods": Decimal(1)}
    spec = pod.get("spec") or {}
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in merged.items():
            totals[name] = totals.get(name, Decimal(0)) + Decimal(str(parse_quantity(value)))
    return totals


def _matches_expression(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator", "")
    values = expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return True  # Gt/Lt and others: do not claim a mismatch


def selects(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not affinity:
        return True
    return any(
        all(_matches_expression(e, labels) for e in term.get("matchExpressions") or [])
        for term in affinity.get("nodeSelectorTerms") or []
    )


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


# Taints the node lifecycle sets for a while (not ready, cordoned, being scaled down).
_TRANSIENT_TAINTS = ("node.kubernetes.io/", "ToBeDeletedByClusterAutoscaler")


def untolerated_taint(pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if str(taint.get("key", "")).startswith(_TRANSIENT_TAINTS):
            continue
        if not _tolerated(taint, tolerations):
            return taint
    return None


def allocatable(node: dict[str, Any]) -> dict[str, Decimal]:
    values = (node.get("status") or {}).get("allocatable") or {}
    return {name: Decimal(str(parse_quantity(value))) for name, value in values.items()}


def short_of(requests: dict[str, Decimal], node: dict[str, Any]) -> list[str]:
    """Resources the pod requests beyond the node's allocatable (an empty node)."""
    room = allocatable(node)
    return [n for n, amount in requests.items() if amount > 0 and amount > room.get(n, Decimal(0))]


def could_ever_hold(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    return (
        selects(pod, node)
        and untolerated_taint(pod, node) is None
        and not short_of(pod_requests(pod), node)
    )


def amount_text(resource: str, amount: Decimal) -> str:
    if resource == "cpu":
        return f"{amount.normalize():f} CPUs" if amount != 1 else "1 CPU"
    if resource in ("memory", "ephemeral-storage"):
        gib = amount / Decimal(1024**3)
        if gib >= 1:
            return f"{gib:.1f} GiB of {resource}"
        return f"{amount / Decimal(1024**2):.0f} MiB of {resource}"
    return f"{amount.normalize():f} {resource}"


def scheduler_reasons(pod: dict[str, Any]) -> list[str]:
    """The reasons of kube-scheduler's FailedScheduling message, without counts."""
    message = _scheduled_condition(pod).get("message") or ""
    head = message.split(" preemption:", 1)[0]
    if ":" not in head:
        return [head.rstrip(".")] if head else []
    listed = head.split(":", 1)[1].strip().rstrip(".")
    return [re.sub(r"^\d+ ", "", part.strip()) for part in _split_reasons(listed)]


def _split_reasons(text: str) -> list[str]:
    """Split "1 a, 2 b {x: y}, 3 c" on the commas between reasons (not inside braces)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "{"
        depth -= char == "}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def _scheduled_condition(pod: dict[str, Any]) -> dict[str, Any]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return condition
    return {}


def scheduler_text(pod: dict[str, Any]) -> str:
    """The scheduler's reasons in a sentence: the resources no node has free when any (the
    nodes that are excluded for their labels or taints explain less), else the reasons."""
    requests = pod_requests(pod)
    reasons = scheduler_reasons(pod)
    short = []
    for reason in reasons:
        if reason.startswith("Insufficient "):
            resource = reason.removeprefix("Insufficient ")
            amount = requests.get(resource)
            short.append(f"no node has {amount_text(resource, amount)} free" if amount else reason)
    texts = short or reasons
    return "; ".join(dict.fromkeys(texts)) or "the scheduler has not placed it yet"


def pool_of_group(group: str) -> str:
    match = _AKS_GROUP.match(group)
    return match.group(1) if match else group


def autoscaler_reasons(message: str) -> list[tuple[int, str]]:
    listed = message.split(":", 1)[1] if ":" in message else ""
    reasons = []
    for part in _split_reasons(listed):
        count, _, reason = part.strip().partition(" ")
        if count.isdigit() and reason:
            reasons.append((int(count), reason))
    return reasons


def _permanent_reason(reason: str) -> bool:
    return reason.startswith(("Insufficient ", AFFINITY, TAINT_PREFIX, "Too many pods"))


AUTOSCALER_POD_REASONS = ("TriggeredScaleUp", "NotTriggerScaleUp")


def event_order(event: dict[str, Any]) -> tuple[str, int]:
    """Sorts a pod's events by when they last happened."""
    return (
        event.get("lastTimestamp") or event.get("eventTime") or "",
        int((event.get("metadata") or {}).get("resourceVersion") or 0),
    )


def _latest(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    mine = [e for e in events if e.get("reason") in AUTOSCALER_POD_REASONS]
    return max(mine, key=event_order) if mine else None


def _node_label(node: dict[str, Any]) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    details = [
        f"pool {labels[POOL_LABEL]}" if POOL_LABEL in labels else "",
        labels.get(INSTANCE_TYPE_LABEL, ""),
    ]
    detail = ", ".join(d for d in details if d)
    return node["metadata"]["name"] + (f" ({detail})" if detail else "")


def _advice(pod: dict[str, Any], nodes: list[dict[str, Any]] | None, reasons: list[str]) -> str:
    """Name the resource at fault, the largest node for it, and the setting to change."""
    requests = pod_requests(pod)
    spec = pod.get("spec") or {}
    sentences = []
    resources = [r.removeprefix("Insufficient ") for r in reasons if r.startswith("Insufficient ")]
    if nodes is not None:
        resources += [r for n in nodes for r in short_of(requests, n) if selects(pod, n)]
    for resource in dict.fromkeys(resources):
        amount = requests.get(resource, Decimal(0))
        sentence = f"it requests {amount_text(resource, amount)}"
        if nodes:
            best = max(nodes, key=lambda n: allocatable(n).get(resource, Decimal(0)))
            room = allocatable(best).get(resource, Decimal(0))
            sentence += (
                f"; the largest node, {_node_label(best)}, has "
                f"{amount_text(resource, room) if room else f'no {resource}'} allocatable"
            )
        setting = SETTING_FOR_RESOURCE.get(resource, f"the {resource} request")
        remedy = (
            "a node pool with a GPU VM size (e.g. Standard_NC6s_v3)"
            if resource.endswith("/gpu")
            else "a node pool with a larger VM size"
        )
        sentences.append(f"{sentence}. Lower {setting}, or add {remedy}")
    if any(r.startswith(AFFINITY) for r in reasons) or (
        nodes is not None and nodes and not any(selects(pod, n) for n in nodes)
    ):
        selector = spec.get("nodeSelector") or {}
        wanted = ", ".join(f"{k}={v}" for k, v in selector.items()) or "its node affinity"
        sentences.append(
            f"no node pool has nodes labelled {wanted}. Change the rule's machine_type or "
            "k8s_node_selector (or --kubernetes-node-selector), or add such a pool"
        )
    if any(r.startswith(TAINT_PREFIX) for r in reasons) and not resources:
        sentences.append(
            "the pools it could use are tainted. Add a toleration with k8s_tolerations or "
            "--kubernetes-tolerations"
        )
    return "; ".join(sentences)


def diagnose(
    pod: dict[str, Any], facts: ClusterFacts, no_autoscaler_grace: float = 60
) -> Diagnosis:
    """Why the unschedulable `pod` waits, and whether it can never be placed."""
    name = name_of(pod) or "?"
    waiting = scheduler_text(pod)
    event = _latest(facts.events.get(name, []))
    nodes = facts.nodes
    held_by_a_node = None if nodes is None else any(could_ever_hold(pod, n) for n in nodes)

    if event is not None and event.get("reason") == "TriggeredScaleUp":
        ups = _SCALE_UP.findall(event.get("message") or "")
        if ups:
            text = ", ".join(
                f"scale-up of {pool_of_group(group)} {before}->{after} triggered"
                for group, before, after, _ in ups
            )
            return Diagnosis(f"waiting for a node: {text}")
        return Diagnosis(f"waiting for a node: {event.get('message')}")

    if event is not None:  # NotTriggerScaleUp
        reasons = autoscaler_reasons(event.get("message") or "")
        texts = [reason for _, reason in reasons]
        at_max = MAX_SIZE_REACHED in texts
        others = [reason for reason in texts if reason != MAX_SIZE_REACHED]
        summary = ", ".join(dict.fromkeys(others)) or MAX_SIZE_REACHED
        never = (
            bool(texts)
            and all(_permanent_reason(r) for r in others)
            and (not at_max or held_by_a_node is False)
        )
        if never:
            return Diagnosis(
                f"{waiting}; autoscaler: no pool can hold it ({summary})",
                never=True,
                failure=(
                    f"no node pool can ever hold pod {name}: the cluster-autoscaler says "
                    f'"{event.get("message")}"; {_advice(pod, nodes, others)}'
                ),
            )
        if at_max and not others:
            return Diagnosis(f"{waiting}; autoscaler: every pool that could hold it is at its max")
        return Diagnosis(f"{waiting}; autoscaler: {event.get('message')}")

    if facts.autoscaler is False and held_by_a_node is False and nodes:
        reasons = scheduler_reasons(pod)
        return Diagnosis(
            f"{waiting}; no node could hold it and the cluster has no autoscaler",
            never=True,
            failure=(
                f"no node can ever hold pod {name} and the cluster has no cluster-autoscaler "
                f"(no kube-system/cluster-autoscaler-status); the scheduler says "
                f'"{_scheduled_condition(pod).get("message", "")}"; '
                f"{_advice(pod, nodes, reasons)}"
            ),
            grace=no_autoscaler_grace,
        )
    return Diagnosis(f"waiting for a node: {waiting}")
