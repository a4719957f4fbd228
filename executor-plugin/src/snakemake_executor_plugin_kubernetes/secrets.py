"""The run's one Secret: every env var a job needs that may carry a credential, and its lifetime.

Values go only into this Secret; pods reference them with secretKeyRef. Lifetime, all
behind three calls of the executor (`job_created`, `job_finished`, `sync_owners`):
created right after the run's first Job, already owned by it (so a run with nothing to
do creates none, and there is no moment at which a killed submitter leaves an unowned
Secret); its ownerReferences then list the run's newest live Jobs (one merge PATCH at the
status-check interval when Jobs were added), so if the submitter dies, the cluster's
garbage collector deletes it once the last Job is gone (e.g. by ttlSecondsAfterFinished).
A succeeded Job is deleted at once, unless it is the last owner the Secret in the cluster
names: it is then kept until a newer owner is recorded, so the Secret never loses all its
owners between waves of jobs; a failed Job the executor must end is deleted at once, after
the Secret names the newer Jobs if it named only that one; if it vanished anyway, the next
PATCH recreates it. The
executor deletes the Secret with the run's other objects at the end of the run.
"""

import base64
import re
import threading
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.cleanup import delete_job
from snakemake_executor_plugin_kubernetes.client import MERGE_PATCH, ApiError, KubeClient, core_path
from snakemake_executor_plugin_kubernetes.naming import secret_name
from snakemake_executor_plugin_kubernetes.permissions import (
    Access,
    explain,
    is_permanent,
    permission_error,
)

# The Secret names only the newest Jobs as owners: enough to keep it while the run
# submits, and small enough to stay far below the API server's object size limit
# (ownerReferences of 10,000 Jobs would be over 1 MiB).
MAX_OWNERS = 64

# valid both as Secret data key and (Kubernetes >= 1.28) as container env var name
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def check_env_names(envvars: Mapping[str, str]) -> None:
    for name in envvars:
        if not _ENV_NAME.match(name):
            raise WorkflowError(
                f"Environment variable name {name!r} (from --envvars, envvars: or a storage "
                "plugin setting) cannot be passed to Kubernetes pods: use letters, digits, "
                "'_', '-', '.' and do not start with a digit."
            )


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": uid,
        "blockOwnerDeletion": False,
    }


class RunSecret:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        run_id: str,
        envvars: Mapping[str, str],
        labels: Mapping[str, str],
        *,
        keep_jobs: bool = False,
        warn: Callable[[str], None],
    ):
        check_env_names(envvars)
        self.client = client
        self.namespace = namespace
        self.name = secret_name(run_id)
        self._data = {k: base64.b64encode(v.encode()).decode() for k, v in envvars.items()}
        self._labels = dict(labels)
        self._keep_jobs = keep_jobs
        self._warn = warn
        # job name -> uid, oldest first: a run may have 10,000 live Jobs, of which the
        # Secret names the newest MAX_OWNERS.
        self._owners: dict[str, str] = {}
        self._synced: set[str] = set()  # owners the Secret in the cluster names
        self._created = False
        self._pending = False
        # Succeeded Jobs not deleted yet, as the Secret would lose its last owner (only
        # the status thread reads and changes it).
        self._retained: set[str] = set()
        self._lock = threading.Lock()  # pool threads add owners while status rounds run

    @property
    def env_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._data))

    @property
    def needed(self) -> bool:
        return bool(self._data)

    def job_created(self, job: Mapping[str, Any]) -> None:
        """Record a new Job as an owner; the first one creates the Secret, owned by it.
        Raises WorkflowError or ApiError if the Secret cannot be created."""
        if not self.needed:
            return
        self._add_owner(job)
        with self._lock:
            if self._created:
                return
            self._created = True
        self._create()

    def job_finished(self, name: str, succeeded: bool, delete: bool = False) -> None:
        """A Job's end. A succeeded Job is deleted here, now or (if it is the Secret's last
        owner) at a later `sync_owners`; with --kubernetes-keep-jobs never. A failed Job is
        kept until the run ends, unless ``delete`` (the executor must end it, as Kubernetes
        would go on with it): then it is deleted now, and if the Secret named no other
        live owner, the Secret first names the newer Jobs, or the garbage collector would
        take it from their pods."""
        if delete:
            self._drop_owner(name)
            if self.needed and self._owners and not self._has_live_owner(set()):
                self._sync_now()
            self._delete_job(name)
        elif not succeeded or self._keep_jobs:
            self._drop_owner(name)
        elif self.needed and not self._has_live_owner(self._retained | {name}):
            self._retained.add(name)
        else:
            self._delete_job(name)

    def sync_owners(self) -> None:
        """At the status-check interval: one PATCH if Jobs were added since the last one
        (recreating the Secret if it vanished), then delete the succeeded Jobs kept for it
        once a newer Job owns it."""
        self._patch_or_warn()
        if self._retained and self._has_live_owner(self._retained):
            for name in sorted(self._retained):
                self._delete_job(name)
            self._retained.clear()

    def _sync_now(self) -> None:
        with self._lock:
            self._pending = True
        self._patch_or_warn()

    def _patch_or_warn(self) -> None:
        try:
            self._patch_owners()
        except ApiError as e:
            access = Access("patch", "secrets")
            detail = explain(e, access, self.namespace) if is_permanent(e, self.namespace) else e
            self._warn(f"Cannot update owners of Secret {self.name}: {detail}")

    def _delete_job(self, name: str) -> None:
        try:
            delete_job(self.client, self.namespace, name)
        except ApiError as e:
            self._warn(f"Cannot delete finished Job {name}: {e}")
        self._drop_owner(name)

    def _manifest(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "labels": self._labels}
        with self._lock:
            owners = self._newest_owners()
        if owners:
            meta["ownerReferences"] = owners
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": self._data,
        }

    def _create(self) -> None:
        manifest = self._manifest()
        try:
            self.client.request("POST", core_path(self.namespace, "secrets"), body=manifest)
        except ApiError as e:
            if is_permanent(e, self.namespace):
                raise permission_error(e, Access("create", "secrets"), self.namespace) from None
            if e.status != 409:
                raise WorkflowError(
                    f"Cannot create Secret {self.name} in namespace {self.namespace}: {e}"
                ) from None
            self.client.request(
                "PUT", core_path(self.namespace, "secrets", self.name), body=manifest
            )
        self._mark_synced(manifest["metadata"].get("ownerReferences", []))

    def _mark_synced(self, owners: list[dict[str, Any]]) -> None:
        with self._lock:
            self._synced = {owner["name"] for owner in owners} & set(self._owners)
            newest = islice(reversed(self._owners), MAX_OWNERS)
            if self._synced.issuperset(newest):
                self._pending = False

    def _has_live_owner(self, excluding: set[str]) -> bool:
        """Whether the cluster's Secret names an existing owner outside ``excluding``."""
        with self._lock:
            return bool(self._synced - excluding)

    def _add_owner(self, job: Mapping[str, Any]) -> None:
        if job.get("metadata", {}).get("uid"):
            with self._lock:
                self._owners[job["metadata"]["name"]] = job["metadata"]["uid"]
                self._pending = True

    def _newest_owners(self) -> list[dict[str, Any]]:
        """ownerReferences of the newest MAX_OWNERS Jobs, oldest first (under the lock)."""
        newest = list(islice(reversed(self._owners.items()), MAX_OWNERS))
        return [owner_reference(name, uid) for name, uid in reversed(newest)]

    def _drop_owner(self, job_name: str) -> None:
        # No PATCH for this alone: a reference to a deleted owner is harmless.
        with self._lock:
            self._owners.pop(job_name, None)
            self._synced.discard(job_name)

    def _patch_owners(self) -> None:
        """One PATCH if Jobs were added since the last call; recreate on 404."""
        with self._lock:
            if not self._pending:
                return
            self._pending = False
            owners = self._newest_owners()
        try:
            self.client.request(
                "PATCH",
                core_path(self.namespace, "secrets", self.name),
                body={"metadata": {"ownerReferences": owners}},
                content_type=MERGE_PATCH,
            )
        except ApiError as e:
            if e.status != 404:
                with self._lock:
                    self._pending = True
                raise
            self._create()
            return
        self._mark_synced(owners)
