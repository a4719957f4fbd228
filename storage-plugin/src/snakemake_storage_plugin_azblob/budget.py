"""A byte budget shared by threads: work starts only while what it holds fits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ByteBudget:
    """At most ``capacity`` bytes held at once. A request larger than the whole budget
    waits until nothing else is held, then runs alone, so it can never wait forever."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a byte budget needs a positive capacity, got {capacity}")
        self.capacity = capacity
        self.held = 0
        self.peak = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        nbytes = min(max(nbytes, 0), self.capacity)
        with self._changed:
            self._changed.wait_for(lambda: self.held + nbytes <= self.capacity)
            self.held += nbytes
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            with self._changed:
                self.held -= nbytes
                self._changed.notify_all()
