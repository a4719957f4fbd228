"""Saved pod logs, also stored under the run's default storage prefix.

A pod's log lives only as long as its pod, and the copy under .snakemake/logs/kubernetes/
only as long as the submitting machine (a laptop, a CI runner). A copy at
`<default storage prefix>/.snakemake/kubernetes-logs/<run id>/<job>.log` outlives both.

It goes through the default storage provider Snakemake itself registered for this run
(`workflow.storage_registry.default_storage_provider`, with the user's storage settings
and credentials), the way Snakemake uploads the workflow's source archive: an object for
the query, its local path set to the saved file, `store_object()`. So the executor needs
no storage code or credentials of its own, and any storage plugin works.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

REMOTE_LOG_DIR = ".snakemake/kubernetes-logs"


class RemoteLogStore:
    def __init__(self, provider: Any, prefix: str, run_id: str) -> None:
        self.provider = provider
        self.prefix = prefix.rstrip("/")
        self.run_id = run_id

    @classmethod
    def for_workflow(cls, workflow: Any, run_id: str) -> "RemoteLogStore | None":
        """None when the run has no default storage provider (nowhere to store)."""
        registry = getattr(workflow, "storage_registry", None)
        provider = getattr(registry, "default_storage_provider", None)
        prefix = getattr(workflow.storage_settings, "default_storage_prefix", None)
        if provider is None or not prefix:
            return None
        return cls(provider, prefix, run_id)

    def query(self, job_name: str) -> str:
        return f"{self.prefix}/{REMOTE_LOG_DIR}/{self.run_id}/{job_name}.log"

    def store(self, job_name: str, local_file: str, warn: Callable[[str], None]) -> str | None:
        """Upload the saved log; its query, or None (with a warning) when that failed. A
        log that cannot be stored never changes a job's outcome."""
        query = self.query(job_name)
        try:
            obj = self.provider.object(query)
            obj.set_local_path(Path(local_file))
            obj.store_object()
        except Exception as e:  # any plugin's error: the log stays on this machine only
            warn(f"Cannot store the pod log of {job_name} at {query}: {e}")
            return None
        return query
