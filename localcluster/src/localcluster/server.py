"""The aiohttp application: authentication, request log and fault injection middlewares,
discovery, and routing of /api and /apis URLs to REST verbs, watches and logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from localcluster import discovery, rest, tables
from localcluster.admission import warning_header
from localcluster.control_api import control_routes
from localcluster.errors import ApiError
from localcluster.kinds import KINDS, Kind
from localcluster.logs import serve_log
from localcluster.rbac import Attributes, Rbac, request_verb
from localcluster.requestlog import (
    OBSERVER_USER_AGENT,
    Fault,
    FaultInjector,
    RequestLog,
    RequestRecord,
)
from localcluster.store import Store
from localcluster.watch import WatchRegistry, serve_watch

log = logging.getLogger("localcluster.server")

CONTROL_PREFIX = "/_localcluster/"
_UNAUTHENTICATED = ("/healthz", "/readyz", "/livez", "/version")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _json_body(request: web.Request) -> Any:
    """The JSON body of a mutating request (aiohttp keeps it for the handler), else None."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE") or not request.can_read_body:
        return None
    try:
        return json.loads(await request.read())
    except ValueError:
        return None  # the handler answers 400 for it


def _drop_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
    raise web.HTTPServiceUnavailable()  # never reaches the closed socket


def _fault_answer(fault: Fault, request: web.Request, record: RequestRecord) -> web.Response:
    status = int(fault.action)
    error = ApiError(status, message=f"injected fault: {fault.action} for {request.path}")
    retry_after = fault.retry_after
    if status == 429:  # the API server's priority and fairness always sends it
        retry_after = 1 if retry_after is None else retry_after
        error.details = {"retryAfterSeconds": retry_after}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    record.status = status
    return rest.json_response(error.to_status(), status=status, headers=headers)


class ClusterServer:
    """Everything the HTTP layer needs; the app keeps one instance."""

    def __init__(
        self,
        store: Store,
        token: str,
        state_dir: Path,
        bookmark_interval: float = 10.0,
        agent: Any = None,
    ) -> None:
        self.store = store
        self.token = token
        self.state_dir = Path(state_dir)
        self.requests = RequestLog()
        self.faults = FaultInjector()
        self.watches = WatchRegistry(bookmark_interval)
        self.agent = agent
        self.rbac = Rbac(store, token)
        self.url = ""
        self.extra_info: dict[str, Any] = {}

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._observe, self._errors, self._authenticate],
            client_max_size=64 * 1024 * 1024,
        )
        app.router.add_routes(control_routes(self))
        if self.agent is not None:
            app.router.add_routes(self.agent.routes())
        for path, handler in (
            ("/version", self._version),
            ("/api", self._api_versions),
            ("/apis", self._api_groups),
        ):
            app.router.add_get(path, handler)
            app.router.add_get(path + "/", handler)
        for probe in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(probe, self._ok)
        app.router.add_route("*", "/api/{version}{rest:(/.*)?}", self._core)
        app.router.add_route("*", "/apis/{group}{rest:(/.*)?}", self._grouped)
        # Anything else (e.g. /openapi/v2, /openapi/v3) is a 404 Status, which kubectl copes with.
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    async def _unknown(self, request: web.Request) -> web.Response:
        raise _not_found_path()

    # ----- middlewares -------------------------------------------------------------------
    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        record = self.requests.add(
            RequestRecord(
                method=request.method,
                path=request.path,
                query=request.query_string,
                user_agent=request.headers.get("User-Agent", ""),
                body=await _json_body(request),
            )
        )
        observer = request.headers.get("User-Agent", "").startswith(OBSERVER_USER_AGENT)
        fault = None if observer else self.faults.take(request.method, request.path)
        if fault is not None and fault.action == "hold":
            record.fault = fault.action
            await self.faults.hold()  # then served as any other request
            fault = None
        serve_first = fault is not None and (fault.action == "drop-response" or fault.served)
        if fault is not None and not serve_first:
            record.fault = fault.action
            if fault.action == "drop":
                record.status = 0
                _drop_connection(request)
            return _fault_answer(fault, request, record)
        try:
            response = await handler(request)
        except web.HTTPException as http_error:
            record.status = http_error.status
            raise
        record.status = response.status
        if fault is None:
            return response
        record.fault = fault.action
        if fault.action == "drop-response":  # served, but the answer never leaves
            record.status = 0
            _drop_connection(request)
        return _fault_answer(fault, request, record)  # served, then an error answered

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return rest.json_response(error.to_status(), status=error.status)
        except web.HTTPException:
            raise
        except Exception as error:  # a bug here must still look like an API error
            log.exception("internal error serving %s %s", request.method, request.path)
            failure = ApiError(500, "InternalError", f"Internal error occurred: {error}")
            return rest.json_response(failure.to_status(), status=500)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(CONTROL_PREFIX) or path in _UNAUTHENTICATED:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        presented = header[7:] if header.startswith("Bearer ") else ""
        user = self.rbac.authenticate(presented)
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        request["user"] = self.rbac.impersonate(user, request.headers)
        return await handler(request)

    def _authorize_path(self, request: web.Request) -> None:
        """Discovery documents are non-resource URLs (system:discovery grants them)."""
        self.rbac.authorize(
            Attributes(request["user"], "get", path=request.path.rstrip("/") or "/")
        )

    # ----- discovery ---------------------------------------------------------------------
    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _version(self, request: web.Request) -> web.Response:
        return rest.json_response(discovery.SERVER_VERSION)

    async def _api_versions(self, request: web.Request) -> web.Response:
        self._authorize_path(request)
        return rest.json_response(discovery.core_versions(request.host))

    async def _api_groups(self, request: web.Request) -> web.Response:
        self._authorize_path(request)
        return rest.json_response(discovery.group_list())

    # ----- resources ---------------------------------------------------------------------
    async def _core(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["version"] != "v1":
            raise _not_found_path()
        return await self._dispatch(request, "", request.match_info.get("rest", ""))

    async def _grouped(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info["group"]
        rest_path = request.match_info.get("rest", "")
        parts = [p for p in rest_path.split("/") if p]
        if not parts:
            body = discovery.group(group)
            if body is None or request.method != "GET":
                raise _not_found_path()
            self._authorize_path(request)
            return rest.json_response(body)
        if parts[0] != "v1" or discovery.group(group) is None:
            raise _not_found_path()
        return await self._dispatch(request, group, "/".join(parts[1:]))

    async def _dispatch(
        self, request: web.Request, group: str, rest_path: str
    ) -> web.StreamResponse:
        parts = [p for p in rest_path.split("/") if p]
        if request.query.get("dryRun") and request.method != "GET":
            # Refuse rather than silently persist what the caller meant to try out.
            raise ApiError(
                400, "BadRequest", "dryRun is not supported by the local cluster (dryRun=All)"
            )
        if not parts:
            if request.method != "GET":
                raise _method_not_allowed()
            self._authorize_path(request)
            return rest.json_response(discovery.resource_list(group, "v1"))
        namespace: str | None = None
        if (
            parts[0] == "namespaces"
            and len(parts) >= 3
            and parts[2] in KINDS
            and KINDS[parts[2]].namespaced
        ):
            namespace = parts[1]
            parts = parts[2:]
        kind = KINDS.get(parts[0])
        if kind is None or kind.group != group or len(parts) > 3:
            raise _not_found_path()
        if kind.namespaced and namespace is None and len(parts) > 1:
            raise _not_found_path()
        name = parts[1] if len(parts) > 1 else ""
        self.rbac.authorize(
            Attributes(
                request["user"],
                request_verb(
                    request.method, bool(name), request.query.get("watch") in ("true", "1")
                ),
                group,
                kind.resource,
                parts[2] if len(parts) > 2 else "",
                # requestinfo.go: a request on a namespace object is in that namespace
                name if kind.resource == "namespaces" else namespace or "",
                name,
            )
        )
        if len(parts) == 1:
            return await self._collection(request, kind, namespace)
        name = parts[1]
        if len(parts) == 2:
            return await self._item(request, kind, namespace, name)
        return await self._subresource(request, kind, namespace, name, parts[2])

    async def _collection(
        self, request: web.Request, kind: Kind, namespace: str | None
    ) -> web.StreamResponse:
        query = request.query
        if request.method == "GET":
            if query.get("watch") in ("true", "1"):
                return await serve_watch(request, self.store, self.watches, kind, namespace)
            listed = rest.list_objects(self.store, kind, namespace, query)
            if tables.wants_table(request.headers.get("Accept", "")):
                return rest.json_response(tables.table(kind, listed["items"], listed["metadata"]))
            return rest.json_response(listed)
        if request.method == "POST":
            if kind.namespaced and namespace is None:
                raise _method_not_allowed()
            body = await rest.read_json(request)
            if kind.resource == "selfsubjectaccessreviews":
                return rest.json_response(self.rbac.review(request, body), status=201)
            warnings: list[str] = []
            created = rest.create_object(self.store, kind, namespace, body, warnings)
            headers = {"Warning": warning_header(warnings)} if warnings else None
            return rest.json_response(created, status=201, headers=headers)
        if request.method == "DELETE":
            body = await rest.read_json(request)
            return rest.json_response(
                rest.delete_collection(self.store, kind, namespace, query, body)
            )
        raise _method_not_allowed()

    async def _item(
        self, request: web.Request, kind: Kind, namespace: str | None, name: str
    ) -> web.StreamResponse:
        method = request.method
        if method == "GET":
            obj = self.store.require(kind.resource, namespace, name)
            if tables.wants_table(request.headers.get("Accept", "")):
                return rest.json_response(tables.table(kind, [obj], {}))
            return rest.json_response(obj)
        if method == "PUT":
            body = await rest.read_json(request)
            return rest.json_response(rest.replace_object(self.store, kind, namespace, name, body))
        if method == "PATCH":
            body = await rest.read_json(request)
            content_type = request.headers.get("Content-Type", "")
            return rest.json_response(
                rest.patch_object(self.store, kind, namespace, name, content_type, body)
            )
        if method == "DELETE":
            body = await rest.read_json(request)
            return rest.delete_object(self.store, kind, namespace, name, request.query, body)
        raise _method_not_allowed()

    async def _subresource(
        self, request: web.Request, kind: Kind, namespace: str | None, name: str, sub: str
    ) -> web.StreamResponse:
        if sub not in kind.subresources:
            raise _not_found_path()
        method = request.method
        if sub == "status":
            if method == "GET":
                return rest.json_response(self.store.require(kind.resource, namespace, name))
            body = await rest.read_json(request)
            if method == "PUT":
                return rest.json_response(
                    rest.replace_object(self.store, kind, namespace, name, body, "status")
                )
            if method == "PATCH":
                content_type = request.headers.get("Content-Type", "")
                return rest.json_response(
                    rest.patch_object(
                        self.store, kind, namespace, name, content_type, body, "status"
                    )
                )
        assert namespace is not None or not kind.namespaced
        if sub == "log" and method == "GET":
            return await serve_log(request, self.store, self.state_dir, namespace or "", name)
        if sub == "eviction" and method == "POST":
            body = await rest.read_json(request)
            return rest.json_response(
                rest.evict_pod(self.store, namespace or "", name, body), status=201
            )
        if sub == "token" and method == "POST":
            body = await rest.read_json(request)
            return rest.json_response(
                self.rbac.token_request(namespace or "", name, body), status=201
            )
        if sub == "binding" and method == "POST":
            body = await rest.read_json(request)
            return rest.json_response(
                rest.bind_pod(self.store, namespace or "", name, body), status=201
            )
        raise _method_not_allowed()


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )
