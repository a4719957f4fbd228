"""watch=true streams: newline-delimited {"type","object"} events with resume, bookmarks,
timeouts and 410 Gone, following the Kubernetes API concepts "Efficient detection of changes"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from localcluster import tables
from localcluster.errors import ApiError, bad_request
from localcluster.kinds import Kind
from localcluster.requestlog import OBSERVER_USER_AGENT
from localcluster.selectors import field_matcher, label_matcher
from localcluster.store import ADDED, DELETED, MODIFIED, Store, WatchEvent

# The real server picks a timeout between minRequestTimeout (1800 s) and twice that.
DEFAULT_MIN_TIMEOUT = 1800.0
# How often an idle watch checks that its client is still connected.
LIVENESS_SECONDS = 1.0


class WatchRegistry:
    """Open watches, so the control API can end them all or make the next ones expire."""

    def __init__(self, bookmark_interval: float = 10.0) -> None:
        self.bookmark_interval = bookmark_interval
        self.open: set[asyncio.Event] = set()
        self.expire_next = 0
        self.served = 0

    def close_all(self) -> int:
        closing = len(self.open)
        for stop in list(self.open):
            stop.set()
        return closing


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _table_line(kind: Kind) -> Callable[[str, dict[str, Any]], bytes]:
    """For ``kubectl get -w``: each event's object is a one-row Table."""

    def line(event_type: str, obj: dict[str, Any]) -> bytes:
        if event_type in ("ERROR", "BOOKMARK"):
            return _line(event_type, obj)
        rv = obj["metadata"].get("resourceVersion", "")
        return _line(event_type, tables.table(kind, [obj], {"resourceVersion": rv}))

    return line


def _expired_line(message: str) -> bytes:
    status = ApiError(410, "Expired", message).to_status()
    return _line("ERROR", status)


async def serve_watch(
    request: web.Request,
    store: Store,
    registry: WatchRegistry,
    kind: Kind,
    namespace: str | None,
) -> web.StreamResponse:
    query = request.query
    labels_match = label_matcher(query.get("labelSelector"))
    fields_match = field_matcher(kind.resource, query.get("fieldSelector"))
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    try:
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
    except ValueError:
        raise bad_request(
            f"timeoutSeconds: invalid value {query.get('timeoutSeconds')!r}"
        ) from None
    if timeout is None:
        timeout = DEFAULT_MIN_TIMEOUT * (1 + random.random())
    requested_rv = query.get("resourceVersion") or ""
    if requested_rv not in ("", "0"):
        try:
            int(requested_rv)
        except ValueError:
            raise bad_request(f"resourceVersion: invalid value {requested_rv!r}") from None

    def in_scope(event: WatchEvent) -> bool:
        if event.resource != kind.resource:
            return False
        return not namespace or event.object["metadata"].get("namespace") == namespace

    def matches(obj: dict[str, Any]) -> bool:
        return labels_match(obj) and fields_match(obj)

    emit = _table_line(kind) if tables.wants_table(request.headers.get("Accept", "")) else _line
    queue = store.subscribe()
    stop = asyncio.Event()
    registry.open.add(stop)
    registry.served += 1
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        observer = request.headers.get("User-Agent", "").startswith(OBSERVER_USER_AGENT)
        if registry.expire_next > 0 and not observer:
            registry.expire_next -= 1
            await response.write(_expired_line("too old resource version: expired by control API"))
            return response
        last_rv = store.resource_version
        pending: list[bytes] = []
        if requested_rv in ("", "0"):
            for obj in store.list(kind.resource, namespace):
                if matches(obj):
                    pending.append(emit(ADDED, obj))
        else:
            try:
                history = store.events_since(int(requested_rv))
            except ApiError as error:
                await response.write(_expired_line(error.message))
                return response
            for event in history:
                line = _translate(event, in_scope, matches, emit)
                if line:
                    pending.append(line)
        if pending:
            await response.write(b"".join(pending))
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + registry.bookmark_interval
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if request.transport is None or request.transport.is_closing():
                break  # the client went away
            wake = min(deadline, next_bookmark if bookmarks else deadline, now + LIVENESS_SECONDS)
            wait_for = wake - now
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait(
                {getter, stopper}, timeout=max(wait_for, 0), return_when=asyncio.FIRST_COMPLETED
            )
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
                if bookmarks and time.monotonic() >= next_bookmark:
                    rv = store.resource_version if queue.empty() else last_rv
                    await response.write(_bookmark(kind, rv))
                    next_bookmark = time.monotonic() + registry.bookmark_interval
                continue
            batch = [getter.result()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            lines = []
            for event in batch:
                last_rv = event.resource_version
                line = _translate(event, in_scope, matches, emit)
                if line:
                    lines.append(line)
            if lines:
                await response.write(b"".join(lines))
        if bookmarks and not stop.is_set():
            await response.write(
                _bookmark(kind, store.resource_version if queue.empty() else last_rv)
            )
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unsubscribe(queue)
        registry.open.discard(stop)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


def _bookmark(kind: Kind, resource_version: int) -> bytes:
    return _line(
        "BOOKMARK",
        {
            "kind": kind.kind,
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(resource_version)},
        },
    )


def _translate(
    event: WatchEvent,
    in_scope: Callable[[WatchEvent], bool],
    matches: Callable[[dict[str, Any]], bool],
    emit: Callable[[str, dict[str, Any]], bytes] = _line,
) -> bytes | None:
    """Turn a store event into this watch's view: objects entering or leaving the selector
    appear as ADDED or DELETED, as the real watch cache reports them."""
    if not in_scope(event):
        return None
    now_matches = matches(event.object)
    if event.type != MODIFIED:
        return emit(event.type, event.object) if now_matches else None
    was_matching = event.previous is not None and matches(event.previous)
    if now_matches:
        return emit(MODIFIED if was_matching else ADDED, event.object)
    if was_matching:
        return emit(DELETED, event.object)
    return None
