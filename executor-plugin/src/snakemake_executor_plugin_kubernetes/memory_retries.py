"""Says what a retry after an out-of-memory kill gets: the killed attempt's mem_mb, the new
one's, and which attempt of how many, e.g.

    OOMKilled at 1000 MB; retrying with 2000 MB (attempt 2 of 3)

The sizes are the pods' memory requests as rendered, so a rule whose memory came from the
defaults (memory.py) is described as precisely as one with its own mem_mb.

Snakemake itself resubmits a failed job while ``--retries`` (or the rule's ``retries:``)
allow, re-evaluating its resources with the next ``attempt``; this only remembers the kill
until that resubmission, keyed by the Snakemake job (its jobid is stable across attempts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snakemake_executor_plugin_kubernetes.template import CONTAINER_NAME

# describe_failure() (outcomes.py) starts its sentence for a memory kill with the reason
# Kubernetes gives (a container's state.terminated.reason), followed by a colon.
OOM_REASON = "OOMKilled: "


def is_memory_kill(failure_message: str) -> bool:
    return OOM_REASON in failure_message


def requested_mem_mb(manifest: Mapping[str, Any]) -> int | None:
    """The memory request of the job's container in MB, as rendered: the rule's mem_mb, or
    the default memory.py chose for a rule without one (resources.py writes ``<N>M``)."""
    containers = manifest["spec"]["template"]["spec"]["containers"]
    main = next((c for c in containers if c.get("name") == CONTAINER_NAME), None)
    request = ((main or {}).get("resources") or {}).get("requests", {}).get("memory")
    if not isinstance(request, str) or not request.endswith("M") or not request[:-1].isdigit():
        return None
    return int(request[:-1])


class MemoryKills:
    def __init__(self) -> None:
        self._killed_at: dict[str, int | None] = {}

    def record(self, job_key: str, mem_mb: int | None) -> None:
        self._killed_at[job_key] = mem_mb

    def retry_notice(
        self, job_key: str, mem_mb: int | None, attempt: int, attempts: int
    ) -> str | None:
        """The line to log when ``job_key`` is submitted again after a memory kill."""
        if job_key not in self._killed_at:
            return None
        before = self._killed_at.pop(job_key)
        shown_before = f"{before} MB" if before is not None else "no mem_mb"
        shown_now = f"{mem_mb} MB" if mem_mb is not None else "no mem_mb"
        notice = (
            f"OOMKilled at {shown_before}; retrying with {shown_now} "
            f"(attempt {attempt} of {attempts})"
        )
        if before is not None and (mem_mb is None or mem_mb <= before):
            notice += (
                "; mem_mb does not grow with the attempt, so this attempt will likely be "
                "killed too: make it a function of attempt, e.g. "
                "mem_mb=lambda wildcards, attempt: 1000 * attempt"
            )
        return notice
