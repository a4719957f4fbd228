"""GET pods/NAME/log: serves the files the node agent writes, with tailLines, limitBytes and
follow (streams until the container's pod stops running)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiohttp import web

from localcluster.errors import bad_request
from localcluster.paths import log_path
from localcluster.store import Store

FOLLOW_POLL_SECONDS = 0.2


def _pick_container(pod: dict[str, Any], wanted: str | None) -> str:
    name = pod["metadata"]["name"]
    names = [c["name"] for c in pod["spec"].get("containers", [])]
    init_names = [c["name"] for c in pod["spec"].get("initContainers") or []]
    if wanted:
        if wanted not in names + init_names:
            raise bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted
    if len(names) == 1:
        return names[0]
    raise bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )


def _waiting_reason(pod: dict[str, Any], container: str) -> str | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container:
            waiting = (status.get("state") or {}).get("waiting")
            return waiting.get("reason", "ContainerCreating") if waiting else None
    return "ContainerCreating"


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def _int_param(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name}: invalid value {value!r}: must be an integer") from None


async def serve_log(
    request: web.Request, store: Store, state_dir: Path, namespace: str, name: str
) -> web.StreamResponse:
    pod = store.require("pods", namespace, name)
    container = _pick_container(pod, request.query.get("container"))
    tail_lines = _int_param(request.query, "tailLines")
    limit_bytes = _int_param(request.query, "limitBytes")
    follow = request.query.get("follow") in ("true", "1")
    if request.query.get("previous") in ("true", "1"):
        # Containers are never restarted in place here, so there is no previous instance.
        raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    path = log_path(state_dir, namespace, name, container)
    if not path.exists():
        reason = _waiting_reason(pod, container)
        if pod.get("status", {}).get("phase") == "Pending":
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: '
                f"{reason or 'ContainerCreating'}"
            )
        data = b""
    else:
        data = path.read_bytes()
    if tail_lines is not None:
        data = _tail(data, tail_lines)
    if limit_bytes is not None:
        data = data[:limit_bytes]
    if not follow:
        return web.Response(body=data, content_type="text/plain")
    response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    sent = len(data)
    offset = path.stat().st_size if path.exists() else 0
    with contextlib.suppress(ConnectionResetError):
        if data:
            await response.write(data)
        while limit_bytes is None or sent < limit_bytes:
            current = store.get("pods", namespace, name)
            finished = current is None or current.get("status", {}).get("phase") in (
                "Succeeded",
                "Failed",
            )
            if path.exists() and path.stat().st_size > offset:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                offset += len(chunk)
                if limit_bytes is not None:
                    chunk = chunk[: limit_bytes - sent]
                sent += len(chunk)
                await response.write(chunk)
                continue
            if finished:
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        await response.write_eof()
    return response
