"""The cluster-autoscaler of an AKS cluster, over the node agent's node pools.

Each scan (``scan_interval``; the real default is 10 s) it:

- looks at pods the scheduler marked ``PodScheduled=False/Unschedulable``. Pods that fit on a
  node still being provisioned wait for it. For the others it simulates one new node of each
  pool (the pool's template node, empty): a pool below its max that could hold some of them is
  scaled up by as many nodes as they need (at most to its max), the pool that helps most pods
  with the least unused CPU first ("least-waste" expander). Each of those pods gets a
  ``TriggeredScaleUp`` event; the nodes register after ``provision_seconds``. When no pool
  can help and no scale-up happened in that scan, each pod gets ``NotTriggerScaleUp`` with
  the count of pools per reason (``max node group size reached`` for a pool at its max,
  otherwise the scheduler's first failing filter on the template node);
- removes a node of a pool above its min that had no pods for ``scale_down_unneeded_seconds``
  (the real default is 10 min): a ``ScaleDownEmpty`` event on the status ConfigMap, the
  ``ToBeDeletedByClusterAutoscaler`` taint and a ``ScaleDown`` event on the node, then the
  Node goes;
- keeps the ConfigMap ``kube-system/cluster-autoscaler-status`` current.

Wording and shapes follow kubernetes/autoscaler (cluster-autoscaler 1.30):
processors/status/eventing_scale_up_processor.go (TriggeredScaleUp "pod triggered scale-up:
%v" with ScaleUpInfo printed as "{GROUP CURRENT->NEW (max: MAX)}", NotTriggerScaleUp "pod
didn't trigger scale-up: %s" with "N reason" per aggregated reason),
core/scaleup/orchestrator (the "max node group size reached" skip reason),
core/scaledown/actuation/actuator.go (ScaleDownEmpty "Scale-down: removing empty node %q",
ScaleDown "marked the node as toBeDeleted/unschedulable"), utils/taints
("ToBeDeletedByClusterAutoscaler"), clusterstate/utils/status.go (ConfigMap name, the
"cluster-autoscaler.kubernetes.io/last-updated" annotation and its time format) and
clusterstate/api (the YAML status document, see status_test.yaml).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import yaml

from localcluster.errors import ApiError
from localcluster.nodeagent import predicates
from localcluster.nodeagent.nodeobjects import node_object
from localcluster.nodeagent.predicates import Resources
from localcluster.nodeagent.scheduler import node_allocatable, occupies_node, wants_scheduling
from localcluster.nodepools import NodePool
from localcluster.nodes import NodeSpec

if TYPE_CHECKING:
    from localcluster.nodeagent.agent import NodeAgent

log = logging.getLogger("localcluster.autoscaler")

COMPONENT = "cluster-autoscaler"
STATUS_NAMESPACE = "kube-system"
STATUS_CONFIGMAP = "cluster-autoscaler-status"
LAST_UPDATED_ANNOTATION = "cluster-autoscaler.kubernetes.io/last-updated"
MAX_SIZE_REACHED = "max node group size reached"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
STATUS_REFRESH_SECONDS = 10.0
NOT_TRIGGERED_REPEAT_SECONDS = 30.0


@dataclass(frozen=True)
class AutoscalerTiming:
    scan_interval: float = 1.0
    provision_seconds: float = 5.0
    scale_down_unneeded_seconds: float = 60.0


@dataclass
class NodeGroup:
    pool: NodePool
    next_instance: int = 0
    target: int = 0  # the scale set's capacity: registered plus upcoming nodes
    registered: list[str] = field(default_factory=list)
    upcoming: int = 0

    @property
    def id(self) -> str:
        return self.pool.scale_set

    def new_instance(self) -> NodeSpec:
        spec = self.pool.node_spec(self.next_instance)
        self.next_instance += 1
        return spec


def _status_time() -> str:
    # Go's "2006-01-02 15:04:05.999999999 -0700 MST" in UTC.
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")


def _rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_unschedulable(pod: dict[str, Any]) -> bool:
    if not wants_scheduling(pod):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return condition.get("status") == "False" and condition.get("reason") == "Unschedulable"
    return False


class ClusterAutoscaler:
    def __init__(self, agent: NodeAgent, pools: list[NodePool], timing: AutoscalerTiming) -> None:
        self.agent = agent
        self.store = agent.store
        self.timing = timing
        # Pools without autoscaling only get their fixed nodes; they are no node group.
        self.fixed_pools = [pool for pool in pools if not pool.autoscale]
        self.groups = {pool.name: NodeGroup(pool) for pool in pools if pool.autoscale}
        self._templates = {
            pool.name: node_object(pool.node_spec(0)) for pool in pools
        }  # labels, taints and allocatable of a fresh node of each pool
        self._unneeded_since: dict[str, float] = {}
        self._not_triggered: dict[str, tuple[str, float]] = {}  # pod uid: (message, when)
        self._status_written: tuple[str, float] | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def initial_nodes(self) -> list[NodeSpec]:
        specs = [pool.node_spec(i) for pool in self.fixed_pools for i in range(pool.min_count)]
        for group in self.groups.values():
            for _ in range(group.pool.min_count):
                spec = group.new_instance()
                group.registered.append(spec.name)
                specs.append(spec)
            group.target = group.pool.min_count
        return specs

    # ----- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.timing.scan_interval)
            try:
                await self.scan()
            except Exception as error:  # one bad scan must not stop autoscaling
                log.exception("autoscaler scan failed: %r", error)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def scan(self) -> None:
        now = time.monotonic()
        scaled_up = self._scale_up()
        await self._scale_down(now, busy=scaled_up)
        self._write_status(now)

    # ----- scale-up ----------------------------------------------------------------------
    def _pending(self) -> list[dict[str, Any]]:
        pods = [pod for pod in self.agent.scheduler.pods.values() if is_unschedulable(pod)]
        pods.sort(key=lambda p: p["metadata"]["creationTimestamp"])
        live = {pod["metadata"]["uid"] for pod in pods}
        for uid in [uid for uid in self._not_triggered if uid not in live]:
            del self._not_triggered[uid]
        return pods

    def _template_reasons(self, pod: dict[str, Any], group: NodeGroup) -> list[str]:
        template = self._templates[group.pool.name]
        requests = self.agent.scheduler.requests_of(pod)
        return predicates.misfit_reasons(pod, template, requests, node_allocatable(template))

    def _fits(self, pod: dict[str, Any], group: NodeGroup, free: Resources) -> bool:
        template = self._templates[group.pool.name]
        requests = self.agent.scheduler.requests_of(pod)
        return not predicates.misfit_reasons(pod, template, requests, free)

    def _scale_up(self) -> bool:
        pending = self._pending()
        if not pending:
            return False
        # Pods that fit on nodes still being provisioned wait for them.
        upcoming = [
            (group, node_allocatable(self._templates[group.pool.name]))
            for group in self.groups.values()
            for _ in range(group.upcoming)
        ]
        remaining = []
        for pod in pending:
            for group, free in upcoming:
                if self._fits(pod, group, free):
                    predicates.add_resources(free, self.agent.scheduler.requests_of(pod), -1)
                    break
            else:
                remaining.append(pod)
        if not remaining:
            return False
        best = self._best_option(remaining)
        if best is None:
            self._report_not_triggered(remaining)
            return False
        group, helped, new_nodes = best
        before = group.target
        group.target += new_nodes
        group.upcoming += new_nodes
        info = f"[{{{group.id} {before}->{group.target} (max: {group.pool.max_count})}}]"
        log.warning("scale-up: setting group %s size to %d", group.id, group.target)
        for pod in helped:
            self._event(pod, "TriggeredScaleUp", f"pod triggered scale-up: {info}")
            self._not_triggered.pop(pod["metadata"]["uid"], None)
        for _ in range(new_nodes):
            self._spawn(self._provision(group))
        return True

    def _best_option(
        self, pods: list[dict[str, Any]]
    ) -> tuple[NodeGroup, list[dict[str, Any]], int] | None:
        options = []
        for order, group in enumerate(self.groups.values()):
            room = group.pool.max_count - group.target
            if room <= 0:
                continue
            template_free = node_allocatable(self._templates[group.pool.name])
            nodes: list[Resources] = []
            helped = []
            for pod in pods:
                requests = self.agent.scheduler.requests_of(pod)
                if not self._fits(pod, group, template_free):
                    continue
                target = next((free for free in nodes if self._fits(pod, group, free)), None)
                if target is None:
                    if len(nodes) >= room:
                        continue
                    target = dict(template_free)
                    nodes.append(target)
                predicates.add_resources(target, requests, -1)
                helped.append(pod)
            if not helped:
                continue
            waste = sum(
                (free.get("cpu", Decimal(0)) / (template_free.get("cpu") or Decimal(1)))
                for free in nodes
            ) / len(nodes)
            options.append((-len(helped), waste, order, group, helped, len(nodes)))
        if not options:
            return None
        _, _, _, group, helped, count = min(options, key=lambda o: o[:3])
        return group, helped, count

    def _report_not_triggered(self, pods: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for pod in pods:
            reasons: list[str] = []
            for group in self.groups.values():
                if group.target >= group.pool.max_count:
                    reasons.append(MAX_SIZE_REACHED)
                else:
                    reasons.extend(self._template_reasons(pod, group)[:1])
            counts = Counter(reasons)
            detail = ", ".join(f"{counts[reason]} {reason}" for reason in sorted(counts))
            message = f"pod didn't trigger scale-up: {detail}"
            uid = pod["metadata"]["uid"]
            last = self._not_triggered.get(uid)
            if last and last[0] == message and now - last[1] < NOT_TRIGGERED_REPEAT_SECONDS:
                continue
            self._not_triggered[uid] = (message, now)
            self._event(pod, "NotTriggerScaleUp", message)

    async def _provision(self, group: NodeGroup) -> None:
        await asyncio.sleep(self.timing.provision_seconds)
        spec = group.new_instance()
        group.upcoming -= 1
        group.registered.append(spec.name)
        self.agent.add_node(spec)
        log.warning("node %s of group %s registered", spec.name, group.id)

    # ----- scale-down --------------------------------------------------------------------
    async def _scale_down(self, now: float, busy: bool) -> None:
        occupied = {
            pod["spec"].get("nodeName")
            for pod in self.agent.scheduler.pods.values()
            if occupies_node(pod)
        }
        for group in self.groups.values():
            for name in list(group.registered):
                if name in occupied or busy:
                    self._unneeded_since.pop(name, None)
                    continue
                since = self._unneeded_since.setdefault(name, now)
                removable = group.target - group.upcoming > group.pool.min_count
                if removable and now - since >= self.timing.scale_down_unneeded_seconds:
                    await self._remove(group, name)

    async def _remove(self, group: NodeGroup, name: str) -> None:
        self._unneeded_since.pop(name, None)
        status_map = self.store.get("configmaps", STATUS_NAMESPACE, STATUS_CONFIGMAP)
        if status_map is not None:
            self._event(status_map, "ScaleDownEmpty", f'Scale-down: removing empty node "{name}"')

        def mark(node: dict[str, Any]) -> None:
            spec = node.setdefault("spec", {})
            spec["unschedulable"] = True
            taints = [t for t in spec.get("taints") or [] if t.get("key") != TO_BE_DELETED_TAINT]
            taints.append(
                {"key": TO_BE_DELETED_TAINT, "value": str(int(time.time())), "effect": "NoSchedule"}
            )
            spec["taints"] = taints

        try:
            node = self.store.mutate("nodes", None, name, mark)
        except ApiError:  # already gone
            node = None
        if node is not None:
            self._event(node, "ScaleDown", "marked the node as toBeDeleted/unschedulable")
        try:
            await self.agent.lose_node(name, remove=True)  # calls forget_node
        except ApiError:
            self.forget_node(name)
        log.warning("scale-down: removed empty node %s of group %s", name, group.id)

    def forget_node(self, name: str) -> None:
        """A node vanished from outside (lose_node, kubectl delete): its group shrinks."""
        for group in self.groups.values():
            if name in group.registered:
                group.registered.remove(name)
                group.target -= 1
        self._unneeded_since.pop(name, None)

    # ----- status ConfigMap --------------------------------------------------------------
    def status_document(self) -> dict[str, Any]:
        probe = _rfc3339()
        scaling_up = any(group.upcoming for group in self.groups.values())
        candidates = len(self._unneeded_since)

        def counts(group: NodeGroup | None) -> dict[str, Any]:
            groups = [group] if group else list(self.groups.values())
            registered = sum(len(g.registered) for g in groups)
            return {
                "registered": {
                    "total": registered,
                    "ready": registered,
                    "notStarted": 0,
                    "beingDeleted": 0,
                },
                "longUnregistered": 0,
                "unregistered": sum(g.upcoming for g in groups),
            }

        def block(key: str, status: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
            previous = self._transitions.get(key)
            if previous is None or previous[0] != status:
                self._transitions[key] = (status, probe)
            return {
                "status": status,
                **(extra or {}),
                "lastProbeTime": probe,
                "lastTransitionTime": self._transitions[key][1],
            }

        node_groups = []
        for group in self.groups.values():
            group_candidates = sum(1 for name in group.registered if name in self._unneeded_since)
            node_groups.append(
                {
                    "name": group.id,
                    "health": block(
                        f"{group.id}/health",
                        "Healthy",
                        {
                            "nodeCounts": counts(group),
                            "cloudProviderTarget": group.target,
                            "minSize": group.pool.min_count,
                            "maxSize": group.pool.max_count,
                        },
                    ),
                    "scaleUp": block(
                        f"{group.id}/scaleUp", "InProgress" if group.upcoming else "NoActivity"
                    ),
                    "scaleDown": block(
                        f"{group.id}/scaleDown",
                        "CandidatesPresent" if group_candidates else "NoCandidates",
                        {"candidates": group_candidates},
                    ),
                }
            )
        return {
            "time": _status_time(),
            "autoscalerStatus": "Running",
            "clusterWide": {
                "health": block("health", "Healthy", {"nodeCounts": counts(None)}),
                "scaleUp": block("scaleUp", "InProgress" if scaling_up else "NoActivity"),
                "scaleDown": block(
                    "scaleDown",
                    "CandidatesPresent" if candidates else "NoCandidates",
                    {"candidates": candidates},
                ),
            },
            "nodeGroups": node_groups,
        }

    def _write_status(self, now: float) -> None:
        document = self.status_document()
        comparable = yaml.safe_dump(_without_times(document), sort_keys=False)
        if (
            self._status_written is not None
            and self._status_written[0] == comparable
            and now - self._status_written[1] < STATUS_REFRESH_SECONDS
        ):
            return
        self._status_written = (comparable, now)
        text = yaml.safe_dump(document, sort_keys=False)
        stamp = document["time"]
        existing = self.store.get("configmaps", STATUS_NAMESPACE, STATUS_CONFIGMAP)
        try:
            if existing is None:
                self.store.create(
                    "configmaps",
                    STATUS_NAMESPACE,
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {
                            "name": STATUS_CONFIGMAP,
                            "namespace": STATUS_NAMESPACE,
                            "annotations": {LAST_UPDATED_ANNOTATION: stamp},
                        },
                        "data": {"status": text},
                    },
                )
            else:

                def update(configmap: dict[str, Any]) -> None:
                    configmap.setdefault("data", {})["status"] = text
                    annotations = configmap["metadata"].setdefault("annotations", {})
                    annotations[LAST_UPDATED_ANNOTATION] = stamp

                self.store.mutate("configmaps", STATUS_NAMESPACE, STATUS_CONFIGMAP, update)
        except ApiError as error:  # e.g. deleted meanwhile: written again next scan
            log.warning("cannot write the autoscaler status: %s", error)
            self._status_written = None

    # ----- helpers -----------------------------------------------------------------------
    def _event(self, obj: dict[str, Any], reason: str, message: str) -> None:
        with contextlib.suppress(ApiError):
            self.store.record_event(obj, reason, message, "Normal", COMPONENT)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_times(v)
            for k, v in value.items()
            if k not in ("time", "lastProbeTime", "lastTransitionTime")
        }
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value
