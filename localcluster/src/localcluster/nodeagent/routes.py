"""Control routes of the node agent, mounted by the API server under /_localcluster/nodes.

- GET  /_localcluster/nodes                                -> {"nodes": [names]}
- POST /_localcluster/nodes            body: NodeSpec dict  -> the created Node object
- POST /_localcluster/nodes/{node}/lose?remove=true|false   -> {"node": ..., "pods": [failed pods]}
- POST /_localcluster/nodes/pods/{namespace}/{name}/evict?by=api|kubelet -> the evicted pod
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from localcluster.errors import ApiError
from localcluster.nodes import NodeSpec

if TYPE_CHECKING:
    from localcluster.nodeagent.agent import NodeAgent

PREFIX = "/_localcluster/nodes"


def _error(error: ApiError) -> web.Response:
    return web.json_response(error.to_status(), status=error.status)


def route_table(agent: NodeAgent) -> list[web.RouteDef]:
    async def list_nodes(request: web.Request) -> web.Response:
        return web.json_response({"nodes": sorted(agent.node_specs)})

    async def add_node(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
            spec = NodeSpec.from_dict(body)
        except (ValueError, TypeError, KeyError) as error:
            return _error(ApiError(400, "BadRequest", f"invalid node: {error}"))
        if spec.name in agent.node_specs:
            return _error(ApiError(409, "AlreadyExists", f'nodes "{spec.name}" already exists'))
        return web.json_response(agent.add_node(spec), status=201)

    async def lose_node(request: web.Request) -> web.Response:
        remove = request.query.get("remove", "true").lower() not in ("false", "0", "no")
        name = request.match_info["node"]
        try:
            pods = await agent.lose_node(name, remove=remove)
        except ApiError as error:
            return _error(error)
        return web.json_response({"node": name, "removed": remove, "pods": pods})

    async def evict(request: web.Request) -> web.Response:
        by = request.query.get("by", "api")
        if by not in ("api", "kubelet"):
            return _error(ApiError(400, "BadRequest", f"by={by!r}: expected 'api' or 'kubelet'"))
        try:
            pod = await agent.evict(
                request.match_info["namespace"], request.match_info["name"], by == "kubelet"
            )
        except ApiError as error:
            return _error(error)
        return web.json_response(pod)

    return [
        web.get(PREFIX, list_nodes),
        web.post(PREFIX, add_node),
        web.post(PREFIX + "/pods/{namespace}/{name}/evict", evict),
        web.post(PREFIX + "/{node}/lose", lose_node),
    ]
