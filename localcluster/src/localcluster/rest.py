"""REST verbs on the store: get, list (with pagination), create, replace, patch, delete,
deletecollection, and the status/eviction/binding subresources."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from aiohttp import web

from localcluster.errors import ApiError, bad_request, expired
from localcluster.kinds import Kind
from localcluster.patch import apply_patch
from localcluster.store import Store, now_rfc3339

# Resources whose main endpoint ignores status changes (status has its own subresource).
_STATUS_SUBRESOURCE = {"pods", "jobs", "namespaces", "nodes", "resourcequotas"}
JOB_ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set '
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress "
    'this warning"'
)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise bad_request(
            f"the body of the request could not be decoded as JSON: {error}"
        ) from None


def _encode_continue(resource_version: int, after: tuple[str, str]) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": list(after)})
    return base64.urlsafe_b64encode(token.encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise bad_request("continue key is not valid: invalid continue token") from None


def list_objects(store: Store, kind: Kind, namespace: str | None, query: Any) -> dict[str, Any]:
    list_rv = store.resource_version
    after = None
    token = query.get("continue")
    if token:
        list_rv, after = _decode_continue(token)
        try:
            store.events_since(list_rv)
        except ApiError:
            raise expired(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter."
            ) from None
    limit = query.get("limit")
    limit_n = 0
    if limit:
        try:
            limit_n = int(limit)
        except ValueError:
            raise bad_request(f"limit: invalid value {limit!r}") from None
    items, matching = store.list_page(
        kind.resource,
        namespace,
        label_selector=query.get("labelSelector"),
        field_selector=query.get("fieldSelector"),
        after=after,
        limit=limit_n if limit_n > 0 else None,
    )
    metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
    if 0 < limit_n < matching:
        last = items[-1]["metadata"]
        metadata["continue"] = _encode_continue(list_rv, (last.get("namespace", ""), last["name"]))
        metadata["remainingItemCount"] = matching - limit_n
    for obj in items:
        # Items inside a list carry no kind/apiVersion, as on a real server.
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
    return {
        "kind": f"{kind.kind}List",
        "apiVersion": kind.api_version,
        "metadata": metadata,
        "items": items,
    }


def create_object(
    store: Store,
    kind: Kind,
    namespace: str | None,
    body: Any,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    _check_body_kind(kind, body)
    obj = copy.deepcopy(body)
    metadata = obj.setdefault("metadata", {})
    if kind.namespaced and metadata.get("namespace") not in (None, "", namespace):
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    for field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
        metadata.pop(field, None)
    if kind.resource in ("pods", "jobs"):
        obj.pop("status", None)
    if not metadata.get("name") and not metadata.get("generateName"):
        raise ApiError(
            422,
            "Invalid",
            f'{kind.kind} "" is invalid: metadata.name: Required value: name or generateName '
            "is required",
            {
                "kind": kind.kind,
                "group": kind.group,
                "causes": [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": "metadata.name",
                    }
                ],
            },
        )
    return store.create(kind.resource, namespace, obj, warnings)


def _check_body_kind(kind: Kind, body: dict[str, Any]) -> None:
    if body.get("kind") not in (None, "", kind.kind):
        raise bad_request(
            f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
            f"API version ({kind.api_version}) or kind {body.get('kind')!r} is not {kind.kind!r}"
        )


def _merge_for_endpoint(
    kind: Kind, current: dict[str, Any], wanted: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """Main endpoint keeps the stored status; /status keeps everything but status."""
    if kind.resource not in _STATUS_SUBRESOURCE:
        return wanted
    if subresource == "status":
        merged = copy.deepcopy(current)
        merged["status"] = wanted.get("status", {})
        merged["metadata"]["resourceVersion"] = wanted.get("metadata", {}).get(
            "resourceVersion", current["metadata"]["resourceVersion"]
        )
        return merged
    merged = copy.deepcopy(wanted)
    merged["status"] = copy.deepcopy(current.get("status", {}))
    return merged


def replace_object(
    store: Store,
    kind: Kind,
    namespace: str | None,
    name: str,
    body: Any,
    subresource: str | None = None,
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    _check_body_kind(kind, body)
    if body.get("metadata", {}).get("name") not in (None, name):
        raise bad_request(
            f"the name of the object ({body['metadata']['name']}) does not match the name on the "
            f"URL ({name})"
        )
    current = store.require(kind.resource, namespace, name)
    wanted = copy.deepcopy(body)
    wanted.setdefault("metadata", {})["name"] = name
    return store.replace(
        kind.resource, namespace, _merge_for_endpoint(kind, current, wanted, subresource)
    )


def patch_object(
    store: Store,
    kind: Kind,
    namespace: str | None,
    name: str,
    content_type: str,
    body: Any,
    subresource: str | None = None,
) -> dict[str, Any]:
    current = store.require(kind.resource, namespace, name)
    patched = apply_patch(content_type, current, body)
    patched.setdefault("metadata", {})["name"] = name
    wanted_rv = patched["metadata"].get("resourceVersion")
    if wanted_rv == current["metadata"]["resourceVersion"]:
        # Only an explicit resourceVersion in the patch is a precondition.
        patched["metadata"].pop("resourceVersion", None)
    return store.replace(
        kind.resource, namespace, _merge_for_endpoint(kind, current, patched, subresource)
    )


def delete_options(query: Any, body: Any) -> tuple[str | None, dict[str, str] | None]:
    options = body if isinstance(body, dict) else {}
    propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    if orphan is None and "orphanDependents" in query:
        orphan = query.get("orphanDependents") == "true"
    if propagation is None and orphan is not None:
        propagation = "Orphan" if orphan else "Background"
    return propagation, options.get("preconditions")


def delete_object(
    store: Store, kind: Kind, namespace: str | None, name: str, query: Any, body: Any
) -> web.Response:
    propagation, preconditions = delete_options(query, body)
    headers = {}
    if propagation is None:
        # batch/v1 Jobs orphan their pods unless told otherwise (their default GC policy).
        propagation = "Orphan" if kind.resource == "jobs" else "Background"
        if kind.resource == "jobs":
            headers["Warning"] = JOB_ORPHAN_WARNING
    last = store.delete(kind.resource, namespace, name, propagation, preconditions)
    still_there = store.get(kind.resource, namespace, name) is not None
    lingered = bool(last["metadata"].get("finalizers"))
    if still_there or lingered or kind.resource in ("pods", "namespaces"):
        return json_response(last, headers=headers)
    return json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": kind.group,
                "kind": kind.resource,
                "uid": last["metadata"]["uid"],
            },
        },
        headers=headers,
    )


def delete_collection(
    store: Store, kind: Kind, namespace: str | None, query: Any, body: Any
) -> dict[str, Any]:
    propagation, _ = delete_options(query, body)
    if propagation is None:
        propagation = "Orphan" if kind.resource == "jobs" else "Background"
    items = store.list(
        kind.resource,
        namespace,
        label_selector=query.get("labelSelector"),
        field_selector=query.get("fieldSelector"),
    )
    deleted = []
    for obj in items:
        meta = obj["metadata"]
        if store.get(kind.resource, meta.get("namespace"), meta["name"]) is not None:
            deleted.append(
                store.delete(kind.resource, meta.get("namespace"), meta["name"], propagation)
            )
    for obj in deleted:
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
    return {
        "kind": f"{kind.kind}List",
        "apiVersion": kind.api_version,
        "metadata": {"resourceVersion": str(store.resource_version)},
        "items": deleted,
    }


def evict_pod(store: Store, namespace: str, name: str, body: Any) -> dict[str, Any]:
    """policy/v1 Eviction: mark the pod with DisruptionTarget, then delete it."""
    store.require("pods", namespace, name)

    def mark(pod: dict[str, Any]) -> None:
        conditions = pod.setdefault("status", {}).setdefault("conditions", [])
        conditions[:] = [c for c in conditions if c.get("type") != "DisruptionTarget"]
        conditions.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
        )

    store.mutate("pods", namespace, name, mark)
    propagation, preconditions = delete_options({}, (body or {}).get("deleteOptions"))
    store.delete("pods", namespace, name, propagation or "Background", preconditions)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def bind_pod(store: Store, namespace: str, name: str, body: Any) -> dict[str, Any]:
    target = (body or {}).get("target") or {}
    node = target.get("name")
    if not node:
        raise bad_request("binding target name is required")
    pod = store.require("pods", namespace, name)
    if pod["spec"].get("nodeName"):
        raise ApiError(
            409, "Conflict", f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"'
        )
    store.mutate("pods", namespace, name, lambda p: p["spec"].__setitem__("nodeName", node))
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
