"""NodeAgent: the local cluster's simulated nodes (scheduler + kubelet) in the server's loop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from localcluster.errors import ApiError
from localcluster.nodeagent import metrics_api, routes
from localcluster.nodeagent.autoscaler import AutoscalerTiming, ClusterAutoscaler
from localcluster.nodeagent.images import ImageCatalog
from localcluster.nodeagent.kubelet import KubeletContext, KubeletTiming, PodRunner, Termination
from localcluster.nodeagent.nodeobjects import node_object, ready_condition
from localcluster.nodeagent.processes import memory_by_process_group
from localcluster.nodeagent.scheduler import TERMINAL_PHASES, Scheduler
from localcluster.nodeagent.usage import Usage, UsageSampler
from localcluster.nodepools import NodePool
from localcluster.nodes import DEFAULT_NODES, NodeSpec

log = logging.getLogger("localcluster.nodeagent")

MEMORY_POLL_SECONDS = 0.25
# How often CPU and memory are sampled for metrics.k8s.io (metrics-server: every 15 s).
USAGE_SAMPLE_SECONDS = 3.0
EVICTION_API = ("EvictionByEvictionAPI", "Eviction API: evicting")
NODE_GONE = ("DeletionByPodGC", "PodGC: node no longer exists")
NOT_READY_TAINTS = [
    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
]


class NodeAgent:
    """Registers Node objects, binds pending pods to them and runs bound pods as processes."""

    def __init__(
        self,
        store: Any,
        nodes: list[NodeSpec] | None,
        state_dir: Path,
        images: ImageCatalog,
        timing: KubeletTiming | None = None,
        pools: list[NodePool] | None = None,
        autoscaler_timing: AutoscalerTiming | None = None,
    ) -> None:
        self.store = store
        if nodes is None and not pools:
            nodes = list(DEFAULT_NODES)
        self.node_specs = {spec.name: spec for spec in nodes or []}
        self.autoscaler: ClusterAutoscaler | None = None
        if pools:
            self.autoscaler = ClusterAutoscaler(
                self, pools, autoscaler_timing or AutoscalerTiming()
            )
            for spec in self.autoscaler.initial_nodes():
                if spec.name in self.node_specs:
                    raise ValueError(f"node {spec.name} is both listed and a pool's node")
                self.node_specs[spec.name] = spec
        self.state_dir = Path(state_dir)
        self.context = KubeletContext(
            store=store,
            state_dir=self.state_dir,
            images=images,
            timing=timing or KubeletTiming(),
        )
        self.scheduler = Scheduler(store)
        self.runners: dict[str, PodRunner] = {}  # by pod uid
        self._pod_ips = (
            str(ip)
            for ip in itertools.islice(ipaddress.ip_network("10.244.0.0/16").hosts(), 1, None)
        )
        self._queue: asyncio.Queue[Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._schedule_wanted = asyncio.Event()
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._usage = UsageSampler()
        # (namespace, pod): container name -> usage over the last window
        self.pod_usage: dict[tuple[str, str], dict[str, Usage]] = {}
        self.usage_sampled_at = 0.0

    # ----- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._queue = self.store.subscribe()
        for spec in self.node_specs.values():
            self._register(spec)
        for node in self.store.list("nodes"):
            self.scheduler.nodes[node["metadata"]["name"]] = node
        for pod in self.store.list("pods"):
            self._on_pod("ADDED", pod)
        self._schedule_wanted.set()
        self._tasks = [
            asyncio.create_task(self._watch_store(), name="nodeagent watch"),
            asyncio.create_task(self._schedule_loop(), name="nodeagent scheduler"),
            asyncio.create_task(self._memory_loop(), name="nodeagent memory"),
            asyncio.create_task(self._usage_loop(), name="nodeagent usage"),
        ]
        if self.autoscaler is not None and self.autoscaler.groups:
            # Without an autoscaled pool AKS runs no cluster-autoscaler (and no status map).
            self._tasks.append(asyncio.create_task(self.autoscaler.run(), name="autoscaler"))

    async def stop(self) -> None:
        if self.autoscaler is not None:
            await self.autoscaler.stop()
        for task in self._tasks:
            task.cancel()
        for runner in list(self.runners.values()):
            runner.kill_now()
        pending = [r.task for r in self.runners.values() if r.task is not None] + self._tasks
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._queue is not None and hasattr(self.store, "unsubscribe"):
            self.store.unsubscribe(self._queue)

    def routes(self) -> list[web.RouteDef]:
        return routes.route_table(self) + metrics_api.route_table(self)

    def pod_of_usage(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.scheduler.pods.get((namespace, name))

    # ----- nodes -------------------------------------------------------------------------
    def _register(self, spec: NodeSpec) -> None:
        node = node_object(spec)
        existing = self.store.get("nodes", None, spec.name)
        if existing is None:
            self.store.create("nodes", None, node)
        else:
            node["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            self.store.replace("nodes", None, node)

    def add_node(self, spec: NodeSpec) -> dict[str, Any]:
        self.node_specs[spec.name] = spec
        self._register(spec)
        node = self.store.get("nodes", None, spec.name)
        self.scheduler.nodes[spec.name] = node
        self._schedule_wanted.set()
        return node

    async def lose_node(self, name: str, remove: bool = True) -> list[str]:
        """The node vanishes (spot eviction, VM loss): its pods fail with DisruptionTarget."""
        if name not in self.node_specs:
            raise ApiError(404, "NotFound", f'nodes "{name}" not found')
        del self.node_specs[name]
        self.scheduler.nodes.pop(name, None)
        if self.autoscaler is not None:
            self.autoscaler.forget_node(name)
        if remove:
            with contextlib.suppress(ApiError):
                self.store.delete("nodes", None, name)
        else:

            def not_ready(node: dict[str, Any]) -> None:
                node.setdefault("spec", {})["taints"] = NOT_READY_TAINTS
                node["status"]["conditions"] = [
                    ready_condition(False, "Kubelet stopped posting node status.")
                ]

            self.scheduler.nodes[name] = self.store.mutate("nodes", None, name, not_ready)
        affected = [
            r
            for r in self.runners.values()
            if r.pod["spec"].get("nodeName") == name and r.phase not in TERMINAL_PHASES
        ]
        reason, message = NODE_GONE
        await asyncio.gather(
            *(
                r.end(Termination("NodeLost", message, (reason, message), "ContainerStatusUnknown"))
                for r in affected
            )
        )
        return [r.name for r in affected]

    async def evict(self, namespace: str, name: str, by_kubelet: bool = False) -> dict[str, Any]:
        """Kill a pod and fail it as an eviction does (Eviction API, or node pressure)."""
        pod = self.store.get("pods", namespace, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        runner = self.runners.get(pod["metadata"]["uid"])
        if by_kubelet:
            message = (
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 64Mi. "
            )
            termination = Termination("Evicted", message, ("TerminationByKubelet", message))
        else:
            termination = Termination("Evicted", "Evicted by the Eviction API", EVICTION_API)
        if runner is None or runner.phase in TERMINAL_PHASES:
            raise ApiError(409, "Conflict", f"pod {namespace}/{name} is not running on a node")
        await runner.end(termination)
        return self.store.get("pods", namespace, name) or pod

    # ----- store events ------------------------------------------------------------------
    async def _watch_store(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                if event.resource == "pods":
                    self._on_pod(event.type, event.object)
                elif event.resource == "nodes":
                    self._on_node(event.type, event.object)
            except Exception as error:  # one bad object must not stop the node
                log.exception("%s %s: %r", event.type, event.resource, error)

    def _on_node(self, event_type: str, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        if event_type == "DELETED":
            self.scheduler.nodes.pop(name, None)
            if name in self.node_specs:
                self._background(self.lose_node(name, remove=True))
            return
        if name in self.node_specs or name in self.scheduler.nodes:
            self.scheduler.nodes[name] = node
            self._schedule_wanted.set()

    def _on_pod(self, event_type: str, pod: dict[str, Any]) -> None:
        if self.scheduler.observe_pod(event_type, pod):
            self._schedule_wanted.set()
        uid = pod["metadata"]["uid"]
        runner = self.runners.get(uid)
        if event_type == "DELETED" or "deletionTimestamp" in pod["metadata"]:
            if runner is not None:
                self._background(self._drop(uid, runner))
            return
        if runner is not None:
            runner.pod = pod
            return
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if node_name in self.node_specs and phase not in TERMINAL_PHASES:
            runner = PodRunner(self.context, pod, next(self._pod_ips))
            self.runners[uid] = runner
            runner.start()

    async def _drop(self, uid: str, runner: PodRunner) -> None:
        await runner.deleted()
        self.runners.pop(uid, None)

    def _background(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # ----- loops -------------------------------------------------------------------------
    async def _schedule_loop(self) -> None:
        while True:
            await self._schedule_wanted.wait()
            await asyncio.sleep(0)  # let a burst of events arrive, then do one pass
            self._schedule_wanted.clear()
            try:
                self.scheduler.schedule_pending()
            except Exception as error:  # keep scheduling later pods
                log.exception("scheduling pass failed: %r", error)

    async def _memory_loop(self) -> None:
        """Kill process groups that exceed their container's memory limit (OOM killer)."""
        while True:
            await asyncio.sleep(MEMORY_POLL_SECONDS)
            watch = self.context.memory_watch
            if not watch:
                continue
            usage = await asyncio.to_thread(memory_by_process_group, list(watch))
            for pid, (process, limit) in list(watch.items()):
                if usage.get(pid, 0) > limit:
                    process.killed_for_memory = True
                    process.signal_group(signal.SIGKILL)

    async def _usage_loop(self) -> None:
        """Sample each running container's CPU and memory for metrics.k8s.io."""
        while True:
            await asyncio.sleep(USAGE_SAMPLE_SECONDS)
            owners = {
                process.pid: ((runner.namespace, runner.name), container)
                for runner in list(self.runners.values())
                for container, process in list(runner.processes.items())
            }
            if not owners:  # nothing runs: no need to scan /proc
                self._usage.sample([])
                self.pod_usage = {}
                self.usage_sampled_at = time.time()
                continue
            try:
                usage = await asyncio.to_thread(self._usage.sample, list(owners))
            except OSError as error:  # /proc unreadable: keep the last figures
                log.warning("cannot sample pod usage: %r", error)
                continue
            by_pod: dict[tuple[str, str], dict[str, Usage]] = {}
            for pid, sample in usage.items():
                pod, container = owners[pid]
                by_pod.setdefault(pod, {})[container] = sample
            self.pod_usage = by_pod
            self.usage_sampled_at = time.time()
