"""When the API client repeats a failed request, and how long it waits first.

``RetryPolicy`` works like urllib3's ``Retry``: an immutable object per request that
``increment`` replaces after each failure (raising the error when it is not to be retried
or the policy is exhausted), with the backoff it asks for. It decides on the client's own
error kinds rather than urllib3's exceptions, because the client also sees the API server's
answers, 401 credential reloads and a throttle shared by all threads (``ThrottleGate``).

Which failures are repeated depends on whether the failed request may have been applied:

=====================  ========================  ===================================
failure                GET, PUT, DELETE (and     POST, PATCH
                       POST of a named object)
=====================  ========================  ===================================
connect error          retried                   retried (never sent)
read error             retried                   not retried (may have been applied)
429                    retried                   retried (refused before handling)
503 with Retry-After   retried                   retried (the server asks for it)
408, 500, 502, 503,    retried                   not retried
504
anything else          not retried               not retried
=====================  ========================  ===================================

A POST that names the object it creates (``metadata.name``, no ``generateName``) is safe to
repeat: if the first attempt was applied, the API server refuses the repeat with 409
AlreadyExists, and the caller reads the object instead (the executor's Job creation and the
run Secret's both do).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from snakemake_executor_plugin_kubernetes.apierrors import ApiError, ErrorKind

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Answers meaning the request was refused before it was handled: Priority and Fairness
# (429) and an API server asking to be asked again later (503 with Retry-After).
REFUSED_UNHANDLED = 429
# Answers of an API server or its load balancer in trouble; the request may have been applied.
TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})


def is_collection(path: str) -> bool:
    """/api/v1[/namespaces/NS]/PLURAL or /apis/GROUP/VERSION[/namespaces/NS]/PLURAL."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    return len(rest) == 1 or (len(rest) == 3 and rest[0] == "namespaces")


def is_named_create(method: str, path: str, body: Any) -> bool:
    """A POST creating an object by its name: a repeat gets 409 AlreadyExists, not a copy.
    (A POST to a subresource, e.g. an eviction, names its object too, but is no create.)"""
    if method.upper() != "POST" or not isinstance(body, dict) or not is_collection(path):
        return False
    metadata = body.get("metadata") or {}
    return bool(metadata.get("name")) and not metadata.get("generateName")


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff, bounded by time rather than by a small count: an API
    server that throttles or restarts for a few minutes must not fail a 10,000-job run.

    ``attempts`` and ``waited`` are the state of one request's retries; a fresh policy
    (the client's configured one) starts each request."""

    base: float = 0.5
    cap: float = 30.0
    max_attempts: int = 100
    max_retry_after: float = 120.0
    budget_seconds: float = 600.0
    idempotent_methods: frozenset[str] = IDEMPOTENT_METHODS
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    attempts: int = 0
    waited: float = 0.0

    def repeatable(self, method: str, path: str, body: Any) -> bool:
        """Whether sending this request twice has the effect of sending it once."""
        return method.upper() in self.idempotent_methods or is_named_create(method, path, body)

    def is_retry(self, error: ApiError, repeatable: bool) -> bool:
        if error.kind is ErrorKind.CONNECT:
            return True
        if error.kind is ErrorKind.READ:
            return repeatable
        if error.status == REFUSED_UNHANDLED:
            return True
        if error.status == 503 and error.retry_after is not None:
            return True
        return repeatable and error.status in TRANSIENT_STATUSES

    def is_exhausted(self) -> bool:
        return self.attempts + 1 >= self.max_attempts or self.waited >= self.budget_seconds

    def increment(self, error: ApiError, repeatable: bool) -> RetryPolicy:
        """The policy for the next attempt; raises ``error`` if there is to be none."""
        if not self.is_retry(error, repeatable) or self.is_exhausted():
            raise error
        return replace(self, attempts=self.attempts + 1)

    def after_waiting(self, seconds: float) -> RetryPolicy:
        return replace(self, waited=self.waited + seconds) if seconds else self

    def delay(self, retry_after: float | None, attempt: int | None = None) -> float:
        """Seconds to wait before the next attempt: the server's Retry-After (capped), else
        the backoff of ``attempt`` (by default the one that just failed), jittered down to
        half so that many clients failing together do not come back together."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        attempt = self.attempts - 1 if attempt is None else attempt
        return min(self.cap, self.base * 2 ** max(0, attempt)) * (0.5 + 0.5 * self.random())


class ThrottleGate:
    """A pause shared by every request of one client. A 429 is the API server's Priority
    and Fairness telling this client's flow to slow down: all its requests, on every
    thread, wait out the Retry-After, not just the one that was refused."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0
        self.holds = 0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)
            self.holds += 1

    def wait(self, sleep: Callable[[float], None]) -> float:
        """Sleep until the pause is over; returns the seconds asked for. A hold extended
        while sleeping is waited out too (each hold once, so an injected sleep that does
        not advance the clock still returns)."""
        slept = 0.0
        waited_for = None
        while True:
            with self._lock:
                until = self._until
                remaining = until - self._clock()
            if remaining <= 0 or until == waited_for:
                return slept
            sleep(remaining)
            slept += remaining
            waited_for = until
