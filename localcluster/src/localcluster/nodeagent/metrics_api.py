"""``metrics.k8s.io/v1beta1`` as metrics-server serves it, from the node agent's samples.

NodeMetrics and PodMetrics (get and list, label selectors), so that ``kubectl top nodes``
and ``kubectl top pods`` work. Shapes follow k8s.io/metrics pkg/apis/metrics/v1beta1
(types.go) and metrics-server's storage (pkg/storage/{node,pod}.go): CPU in nanocores, memory
in Ki, a ``timestamp`` and a ``window``; a pod or node without a sample yet is 404
``podmetrics.metrics.k8s.io "NS/NAME" not found`` / ``nodemetrics.metrics.k8s.io "NAME" not
found``. A node's usage here is the sum of its pods' (the emulated node runs nothing else).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from localcluster import discovery, rest
from localcluster.errors import ApiError
from localcluster.nodeagent.usage import Usage
from localcluster.selectors import label_matcher

if TYPE_CHECKING:
    from localcluster.nodeagent.agent import NodeAgent

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
PREFIX = f"/apis/{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantities(cpu_cores: float, memory_bytes: int) -> dict[str, str]:
    return {"cpu": f"{round(cpu_cores * 1e9)}n", "memory": f"{memory_bytes // 1024}Ki"}


def resource_list() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            {
                "name": "nodes",
                "singularName": "",
                "namespaced": False,
                "kind": "NodeMetrics",
                "verbs": ["get", "list"],
            },
            {
                "name": "pods",
                "singularName": "",
                "namespaced": True,
                "kind": "PodMetrics",
                "verbs": ["get", "list"],
            },
        ],
    }


def pod_metrics(pod: dict[str, Any], containers: dict[str, Usage]) -> dict[str, Any]:
    meta = pod["metadata"]
    newest = max(containers.values(), key=lambda u: u.timestamp)
    return {
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "creationTimestamp": _time(newest.timestamp),
            "labels": dict(meta.get("labels") or {}),
        },
        "timestamp": _time(newest.timestamp - newest.window_seconds),
        "window": f"{newest.window_seconds:.3f}s",
        "containers": [
            {"name": name, "usage": _quantities(usage.cpu_cores, usage.memory_bytes)}
            for name, usage in sorted(containers.items())
        ],
    }


def node_metrics(node: dict[str, Any], pods: list[dict[str, Usage]], now: float) -> dict[str, Any]:
    usages = [usage for containers in pods for usage in containers.values()]
    window = max((u.window_seconds for u in usages), default=0.0)
    return {
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": node["metadata"]["name"],
            "creationTimestamp": _time(now),
            "labels": dict(node["metadata"].get("labels") or {}),
        },
        "timestamp": _time(now - window),
        "window": f"{window:.3f}s",
        "usage": _quantities(sum(u.cpu_cores for u in usages), sum(u.memory_bytes for u in usages)),
    }


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}


def route_table(agent: NodeAgent) -> list[web.RouteDef]:
    discovery.register_aggregated_group(GROUP, VERSION)

    def handle(action: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                return rest.json_response(action(request))
            except ApiError as error:
                return web.json_response(error.to_status(), status=error.status)

        return handler

    def pods_in(request: web.Request, namespace: str | None) -> list[dict[str, Any]]:
        matches = label_matcher(request.query.get("labelSelector"))
        items = []
        for (pod_namespace, _), containers in sorted(agent.pod_usage.items()):
            if namespace is not None and pod_namespace != namespace:
                continue
            pod = agent.pod_of_usage(pod_namespace, _)
            if pod is not None and containers and matches(pod):
                items.append(pod_metrics(pod, containers))
        return items

    def one_pod(request: web.Request) -> dict[str, Any]:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        containers = agent.pod_usage.get((namespace, name))
        pod = agent.pod_of_usage(namespace, name)
        if not containers or pod is None:
            raise ApiError(404, "NotFound", f'podmetrics.{GROUP} "{namespace}/{name}" not found')
        return pod_metrics(pod, containers)

    def nodes(request: web.Request, only: str | None = None) -> list[dict[str, Any]]:
        matches = label_matcher(request.query.get("labelSelector"))
        by_node: dict[str, list[dict[str, Usage]]] = {}
        for key, containers in agent.pod_usage.items():
            pod = agent.pod_of_usage(*key)
            if pod is not None:
                by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(containers)
        items = []
        for name in sorted(agent.node_specs):
            if only is not None and name != only:
                continue
            node = agent.store.get("nodes", None, name)
            if node is not None and matches(node) and agent.usage_sampled_at:
                items.append(node_metrics(node, by_node.get(name, []), agent.usage_sampled_at))
        return items

    def one_node(request: web.Request) -> dict[str, Any]:
        name = request.match_info["name"]
        found = nodes(request, name)
        if not found:
            raise ApiError(404, "NotFound", f'nodemetrics.{GROUP} "{name}" not found')
        return found[0]

    version = f"{PREFIX}/{VERSION}"
    return [
        web.get(PREFIX, handle(lambda r: discovery.group(GROUP))),
        web.get(version, handle(lambda r: resource_list())),
        web.get(f"{version}/nodes", handle(lambda r: _list("NodeMetricsList", nodes(r)))),
        web.get(f"{version}/nodes/{{name}}", handle(one_node)),
        web.get(f"{version}/pods", handle(lambda r: _list("PodMetricsList", pods_in(r, None)))),
        web.get(
            f"{version}/namespaces/{{namespace}}/pods",
            handle(lambda r: _list("PodMetricsList", pods_in(r, r.match_info["namespace"]))),
        ),
        web.get(f"{version}/namespaces/{{namespace}}/pods/{{name}}", handle(one_pod)),
    ]
