"""What the control API records and injects: a log of API requests and pending faults."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# Statuses an API server, or the load balancer in front of it (502), answers under load or
# trouble (403, 422: a refusal, as RBAC, validation or an admission webhook gives; 504: the
# answer timed out, see errors.py); "drop" closes the connection before the request is
# served, "drop-response" after it was served (the change is made, the client never hears
# of it: a timed-out answer); "hold" keeps the request waiting until the test releases it.
# The user agent of localcluster.observer: injected faults and watch expiry pass its requests
# by, since an observer must not change what it observes.
OBSERVER_USER_AGENT = "localcluster-observer"

STATUS_ACTIONS = ("403", "405", "422", "429", "500", "502", "503", "504")
FAULT_ACTIONS = (*STATUS_ACTIONS, "drop", "drop-response", "hold")


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    user_agent: str
    body: Any = None  # the JSON a POST/PUT/PATCH/DELETE sent, if any
    status: int | None = None  # None while a stream is open; 0 for a dropped connection
    fault: str | None = None
    time: float = field(default_factory=time.time)


class RequestLog:
    def __init__(self, limit: int = 100000) -> None:
        self.records: list[RequestRecord] = []
        self.limit = limit

    def add(self, record: RequestRecord) -> RequestRecord:
        if len(self.records) >= self.limit:
            del self.records[: self.limit // 10]
        self.records.append(record)
        return record

    def reset(self) -> int:
        dropped = len(self.records)
        self.records = []
        return dropped

    def to_json(self) -> dict[str, Any]:
        counts = Counter(f"{r.method} {r.path}" for r in self.records)
        return {
            "requests": [asdict(r) for r in self.records],
            "total": len(self.records),
            "counts": dict(counts),
        }


@dataclass
class Fault:
    id: int
    method: str  # HTTP method or "*"
    path: str  # regular expression searched in the request path
    action: str  # one of FAULT_ACTIONS
    remaining: int
    retry_after: int | None = None  # seconds; a 429 always carries it (default 1)
    after: int = 0  # matching requests let through before this fault acts
    served: bool = False  # a status action answered after the request was served

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in ("*", method.upper())
            and re.search(self.path, path) is not None
        )


class FaultInjector:
    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self._next_id = 1
        self.held = 0  # requests waiting on a "hold" fault now
        self._release = asyncio.Event()

    def add(
        self,
        method: str,
        path: str,
        action: str,
        count: int,
        retry_after: int | None,
        after: int = 0,
        served: bool = False,
    ) -> Fault:
        if action not in FAULT_ACTIONS:
            raise ValueError(f"fault action {action!r}: expected one of {', '.join(FAULT_ACTIONS)}")
        if count < 1:
            raise ValueError(f"fault count {count}: must be at least 1")
        if after < 0:
            raise ValueError(f"fault after {after}: must not be negative")
        if served and action not in STATUS_ACTIONS:
            raise ValueError(f"fault action {action!r}: only an error status can be served")
        try:
            re.compile(path)
        except re.error as error:
            raise ValueError(f"fault path regex {path!r}: {error}") from None
        fault = Fault(
            self._next_id, method.upper(), path, action, count, retry_after, after, served
        )
        self._next_id += 1
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault matching this request, consuming one of its uses. A fault
        still letting requests through (``after``) counts this one and looks further."""
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def hold(self) -> None:
        """Wait, as a held request, until ``release`` (or ``clear``)."""
        released = self._release
        self.held += 1
        try:
            await released.wait()
        finally:
            self.held -= 1

    def release(self) -> int:
        """Let every held request go on and drop the hold faults not yet used."""
        held = self.held
        self._release.set()
        self._release = asyncio.Event()
        self.faults = [f for f in self.faults if f.action != "hold"]
        return held

    def clear(self) -> None:
        self.release()
        self.faults = []

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.faults]
