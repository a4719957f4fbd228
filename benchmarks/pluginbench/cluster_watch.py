"""What the benchmark reads of the local cluster's request log while a workflow runs (the
pods themselves are followed by localcluster's ClusterObserver).

``RequestCollector`` polls the request log and keeps every record exactly once: the log is
append-only in time order and trims its oldest tenth when full, so a time cursor, polled more
often than the log can fill, misses nothing; if it ever did, ``overflowed`` says so.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from localcluster.observer import OBSERVER_USER_AGENT


class RequestCollector:
    """Accumulates the local cluster's request log from a background thread."""

    def __init__(self, control: Any, interval: float = 3.0) -> None:
        self._control = control
        self._interval = interval
        self.records: list[dict[str, Any]] = []
        self.overflowed = False
        self._cursor: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="request-log", daemon=True)

    def poll(self) -> None:
        with self._lock:
            records = self._control.requests()
            if records and self._cursor is not None and records[0]["time"] > self._cursor:
                self.overflowed = True
            fresh = [r for r in records if self._cursor is None or r["time"] > self._cursor]
            if fresh:
                self._cursor = fresh[-1]["time"]
            self.records += fresh

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self.poll()

    def start(self) -> RequestCollector:
        self._control.reset_requests()
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=60)
        self.poll()
        return [
            r
            for r in self.records
            if not (r.get("user_agent") or "").startswith(OBSERVER_USER_AGENT)
        ]
