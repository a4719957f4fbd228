"""CPU time and peak memory of a process, read from /proc (Linux).

Used for the Snakemake process under test (its own CPU time and peak RSS, sampled while
it runs, since the scale phase kills it) and for the local cluster's process: its peak RSS
is the API server's (the node agent shares the process, idle when no pod can be placed),
and the CPU time of the children it has reaped is the CPU time of every pod's process
tree (each pod's shell waits for its Snakemake, so that time is folded into the shell's,
and the agent reaps the shell when the container exits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the parenthesised name; proc(5) number n is index n - 3.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process itself."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def reaped_children_cpu_seconds(pid: int) -> float:
    """User + system CPU time of every child the process has waited for (and theirs)."""
    fields = _stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / TICKS_PER_SECOND


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the largest resident set the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"VmHWM missing from /proc/{pid}/status")


@dataclass
class ProcessSample:
    """The last values seen of a process that may be killed before it can be read again."""

    pid: int
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0

    def take(self) -> None:
        try:
            self.cpu_seconds = cpu_seconds(self.pid)
            self.peak_rss_bytes = max(self.peak_rss_bytes, peak_rss_bytes(self.pid))
        except (OSError, ValueError, IndexError, RuntimeError):
            pass  # gone (or a zombie) between two samples: the last values stand
