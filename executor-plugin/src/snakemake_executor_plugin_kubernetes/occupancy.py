"""When the run last had a pod on a node.

While some of the run's pods are on nodes, its unschedulable pods wait in a queue behind
them (a busy cluster, or one whose autoscaler is at its maximum) rather than being stuck, so
the unschedulable timeout only counts time in which none of the run's pods was on a node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FINISHED_PHASES = ("Succeeded", "Failed")


def is_on_a_node(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) and (
        (pod.get("status") or {}).get("phase") not in FINISHED_PHASES
    )


class OccupancyClock:
    def __init__(self) -> None:
        self.last_occupied: float | None = None

    def observe(self, pods: Iterable[dict[str, Any]], now: float) -> None:
        """Take the run's current pods at time `now`."""
        if any(is_on_a_node(pod) for pod in pods):
            self.last_occupied = now
