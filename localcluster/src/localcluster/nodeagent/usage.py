"""CPU and memory each container's process group uses, sampled as metrics-server's do.

metrics-server reads the kubelet's resource metrics every 15 s and reports CPU as the rate
between two cumulative samples and memory as the working set. Here CPU is the process
group's cumulative user + system time (``utime + stime`` of every live member, plus
``cutime + cstime``, the time of children it already reaped), and memory is the group's
proportional set size, the same figure the memory-limit enforcement uses.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from localcluster.nodeagent.processes import memory_by_process_group, stats_of_process_groups

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds_by_process_group(groups: Collection[int]) -> dict[int, float]:
    ticks: dict[int, int] = defaultdict(int)
    for _, pgrp, fields in stats_of_process_groups(groups):
        ticks[pgrp] += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return {pgrp: count / _TICKS_PER_SECOND for pgrp, count in ticks.items()}


@dataclass(frozen=True)
class Usage:
    cpu_cores: float  # average over the window
    memory_bytes: int
    timestamp: float  # wall clock, end of the window
    window_seconds: float


class UsageSampler:
    """Keeps the last CPU total per process group; each sample yields usage over the window
    since the previous one."""

    def __init__(self) -> None:
        self._previous: dict[int, tuple[float, float]] = {}  # pgrp: (cpu seconds, monotonic)
        self.latest: dict[int, Usage] = {}

    def sample(self, groups: Collection[int]) -> dict[int, Usage]:
        now = time.monotonic()
        wall = time.time()
        cpu = cpu_seconds_by_process_group(groups) if groups else {}
        memory = memory_by_process_group(groups) if groups else {}
        latest: dict[int, Usage] = {}
        previous: dict[int, tuple[float, float]] = {}
        for pgrp in groups:
            total = cpu.get(pgrp, 0.0)
            before = self._previous.get(pgrp)
            previous[pgrp] = (total, now)
            if before is None or now <= before[1]:
                continue  # a rate needs two samples
            window = now - before[1]
            rate = max(0.0, total - before[0]) / window
            latest[pgrp] = Usage(rate, memory.get(pgrp, 0), wall, window)
        self._previous = previous
        self.latest = latest
        return latest
