"""Python client of the control API under /_localcluster/ (see control_api.py and the node
agent's routes): request log, fault injection, watch control, eviction, node loss."""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class ControlError(RuntimeError):
    pass


class ClusterControl:
    def __init__(self, url: str, ca_file: Path | str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.url}/_localcluster/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self._context
            ) as reply:
                payload = reply.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise ControlError(f"{method} {url}: HTTP {error.code}: {detail}") from None
        return json.loads(payload) if payload else None

    # ----- observation -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return self._call("GET", "info")

    def requests(self, user_agent: str | None = None) -> list[dict[str, Any]]:
        """Every API request since the last reset (method, path, query, body, status,
        user_agent, fault), or those whose user agent starts with ``user_agent``."""
        records = self._call("GET", "requests")["requests"]
        if user_agent is None:
            return records
        return [r for r in records if (r.get("user_agent") or "").startswith(user_agent)]

    def request_counts(self) -> dict[str, int]:
        """Counts keyed "METHOD /path"."""
        return self._call("GET", "requests")["counts"]

    def count_requests(
        self,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        user_agent: str | None = None,
    ) -> int:
        """Requests matching a method, a path regex (searched), a status and a user agent."""
        return sum(
            1
            for record in self.requests(user_agent)
            if (method is None or record["method"] == method.upper())
            and (path is None or re.search(path, record["path"]))
            and (status is None or record["status"] == status)
        )

    def reset_requests(self) -> int:
        return self._call("DELETE", "requests")["dropped"]

    # ----- faults ------------------------------------------------------------------------
    def inject_fault(
        self,
        action: str | int,
        path: str = ".*",
        method: str = "*",
        count: int = 1,
        retry_after: int | None = None,
        after: int = 0,
        served: bool = False,
    ) -> int:
        """The next ``count`` requests matching method and path regex get ``action``: an
        error status (403, 405, 422, 429, 500, 502, 503, 504; a 429 always carries Retry-After,
        default 1 s, the others when ``retry_after`` is given), "drop" (connection closed,
        request not served), "drop-response" (served, then the connection closed before the
        answer) or "hold" (kept waiting until ``release_held``, then served).

        ``after``: let that many matching requests through first (those an earlier fault
        did not take), e.g. ``after=2`` acts from the third. ``served``: an error status is
        answered after the request was served (the change is made, as when an API server
        times out on the answer: 504)."""
        body = {
            "action": str(action),
            "path": path,
            "method": method,
            "count": count,
            "retry_after": retry_after,
            "after": after,
            "served": served,
        }
        return self._call("POST", "faults", body)["id"]

    def release_held(self) -> int:
        """Let the requests held by "hold" faults go on (they are then served); the hold
        faults not yet used are dropped. Returns how many requests were held."""
        return self._call("POST", "faults/release")["released"]

    def held_requests(self) -> int:
        return int(self.info()["heldRequests"])

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        """Drop every injected fault, including watch expiries not yet served, and release
        held requests."""
        self._call("DELETE", "faults")

    # ----- credentials -------------------------------------------------------------------
    def set_token(self, token: str) -> None:
        """From now on accept only ``token`` (as if the cluster's credentials were rotated)."""
        self._call("POST", "token", {"token": token})

    # ----- watches -----------------------------------------------------------------------
    def close_watches(self) -> int:
        """End every open watch stream now (clients see a clean end of stream)."""
        return self._call("POST", "watches/close")["closed"]

    def expire_next_watch(self, count: int = 1) -> int:
        """The next ``count`` watch requests get an ERROR event with a 410 Expired Status."""
        return self._call("POST", "watches/expire-next", {"count": count})["expireNext"]

    def compact(self) -> int:
        """Drop the watch history: resuming from any current resourceVersion gives 410."""
        return int(self._call("POST", "compact")["compactedTo"])

    # ----- node agent --------------------------------------------------------------------
    def nodes(self) -> list[str]:
        return self._call("GET", "nodes")["nodes"]

    def add_node(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "nodes", spec)

    def evict_pod(self, namespace: str, name: str, by: str = "api") -> dict[str, Any]:
        return self._call("POST", f"nodes/pods/{namespace}/{name}/evict", query={"by": by})

    def lose_node(self, name: str, remove: bool = False) -> dict[str, Any]:
        return self._call(
            "POST", f"nodes/{name}/lose", query={"remove": "true" if remove else "false"}
        )
