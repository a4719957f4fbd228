"""When the cluster last placed one of the run's pods on a node.

While pods keep being placed, the run's unschedulable pods wait in a queue for capacity (a
busy cluster, or one whose autoscaler is at its maximum) rather than being stuck, so the
unschedulable timeout only counts time in which no pod of the run was placed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class PlacementClock:
    def __init__(self) -> None:
        self.last_placement: float | None = None
        self._placed: set[str] = set()

    def observe(self, pods: Iterable[dict[str, Any]], now: float) -> None:
        """Take the run's current pods; a pod newly bound to a node moves the clock."""
        placed = {
            (pod.get("metadata") or {}).get("uid") or (pod.get("metadata") or {}).get("name", "")
            for pod in pods
            if (pod.get("spec") or {}).get("nodeName")
        }
        if placed - self._placed:
            self.last_placement = now
        # only pods still known: memory stays bounded by the active jobs' pods
        self._placed = placed
