"""HTTP control endpoints under /_localcluster/ (loopback only, no auth) used by tests to
observe requests and inject faults. The Python client is localcluster.control.ClusterControl."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from localcluster.discovery import SERVER_VERSION

if TYPE_CHECKING:
    from localcluster.server import ClusterServer


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise web.HTTPBadRequest(text=f"control request body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="control request body must be a JSON object")
    return data


def control_routes(server: ClusterServer) -> list[web.RouteDef]:
    async def info(request: web.Request) -> web.Response:
        return _json(
            {
                "url": server.url,
                "pid": os.getpid(),
                "version": SERVER_VERSION["gitVersion"],
                "resourceVersion": str(server.store.resource_version),
                "openWatches": len(server.watches.open),
                "watchesServed": server.watches.served,
                "heldRequests": server.faults.held,
                "agent": server.agent is not None,
                "stateDir": str(server.state_dir),
                **server.extra_info,
            }
        )

    async def requests(request: web.Request) -> web.Response:
        return _json(server.requests.to_json())

    async def reset_requests(request: web.Request) -> web.Response:
        return _json({"dropped": server.requests.reset()})

    async def list_faults(request: web.Request) -> web.Response:
        return _json({"faults": server.faults.to_json()})

    async def add_fault(request: web.Request) -> web.Response:
        data = await _body(request)
        try:
            fault = server.faults.add(
                method=str(data.get("method", "*")),
                path=str(data.get("path", ".*")),
                action=str(data.get("action", "")),
                count=int(data.get("count", 1)),
                retry_after=None if data.get("retry_after") is None else int(data["retry_after"]),
                after=int(data.get("after", 0)),
                served=bool(data.get("served", False)),
            )
        except (TypeError, ValueError) as error:
            return _json({"error": str(error)}, status=400)
        return _json({"id": fault.id}, status=201)

    async def release_held(request: web.Request) -> web.Response:
        return _json({"released": server.faults.release()})

    async def clear_faults(request: web.Request) -> web.Response:
        # Every injected fault, watch expiries not yet served included: a test that clears
        # its faults leaves none behind for the next one.
        server.faults.clear()
        server.watches.expire_next = 0
        return _json({"faults": []})

    async def set_token(request: web.Request) -> web.Response:
        """Accept another bearer token from now on (credentials rotated under a client)."""
        token = str((await _body(request)).get("token", ""))
        if not token:
            return _json({"error": "token: must not be empty"}, status=400)
        # The admin token is what authentication checks (Rbac); ServiceAccount tokens stay.
        server.token = server.rbac.admin_token = token
        return _json({"rotated": True})

    async def close_watches(request: web.Request) -> web.Response:
        return _json({"closed": server.watches.close_all()})

    async def expire_next_watch(request: web.Request) -> web.Response:
        data = await _body(request)
        count = int(data.get("count", 1))
        server.watches.expire_next += count
        return _json({"expireNext": server.watches.expire_next})

    async def compact(request: web.Request) -> web.Response:
        return _json({"compactedTo": str(server.store.compact())})

    return [
        web.get("/_localcluster/info", info),
        web.get("/_localcluster/requests", requests),
        web.delete("/_localcluster/requests", reset_requests),
        web.get("/_localcluster/faults", list_faults),
        web.post("/_localcluster/faults", add_fault),
        web.delete("/_localcluster/faults", clear_faults),
        web.post("/_localcluster/faults/release", release_held),
        web.post("/_localcluster/token", set_token),
        web.post("/_localcluster/watches/close", close_watches),
        web.post("/_localcluster/watches/expire-next", expire_next_watch),
        web.post("/_localcluster/compact", compact),
    ]
