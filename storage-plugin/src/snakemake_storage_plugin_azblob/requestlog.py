"""Count the HTTP requests a provider sends (every attempt, retries included).

Each provider owns a :class:`RequestLog` (``provider.request_log``); tests read it to
assert request budgets. Setting ``SNAKEMAKE_STORAGE_AZBLOB_REQUEST_LOG=FILE`` makes
every provider append its totals as one JSON line to FILE when the process exits,
which lets tests count the requests of a whole ``snakemake`` run.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field

REQUEST_LOG_ENV = "SNAKEMAKE_STORAGE_AZBLOB_REQUEST_LOG"


@dataclass
class RequestLog:
    by_method: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, query: str) -> None:
        operation = _operation(method, query)
        with self._lock:
            self.by_method[method] += 1
            self.by_operation[operation] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_method.values())

    def count(self, operation: str) -> int:
        with self._lock:
            return self.by_operation[operation]

    def reset(self) -> None:
        with self._lock:
            self.by_method.clear()
            self.by_operation.clear()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "total": sum(self.by_method.values()),
                "by_method": dict(self.by_method),
                "by_operation": dict(self.by_operation),
            }

    def write_at_exit_if_requested(self) -> None:
        target = os.environ.get(REQUEST_LOG_ENV)
        if target:
            atexit.register(self._append_to, target)

    def _append_to(self, target: str) -> None:
        line = json.dumps({"pid": os.getpid(), **self.snapshot()})
        with open(target, "a") as out:
            out.write(line + "\n")


def _operation(method: str, query: str) -> str:
    """A short name such as ``GET list`` or ``PUT block`` from the URL's query string."""
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    if "comp" in params:
        return f"{method} {params['comp']}"
    if "restype" in params:
        return f"{method} {params['restype']}"
    if "blockid" in params:
        return f"{method} block"
    return method
