"""The part of a Job or Pod that the watch cache keeps: what the status rounds read.

A decoded Pod holds the whole rendered job (command line, environment, volumes, managed
fields), several kilobytes; the status rounds read a few dozen fields of it. At 10,000
Pending jobs the cache holds 20,000 objects, so it keeps a record per object: a read-only
mapping of the same shape (readers go on using ``obj.get("status")``) over the object's
name, version, creation time, owning Job and attempt, and a spec and a status that hold
only the fields read by:

- outcomes.py: Job conditions, the job container's resources in the Job's pod template,
  ``activeDeadlineSeconds``; pod phase, reason, message, conditions, container states,
  ``nodeName``, container images;
- placement.py / clusterview.py: pod requests and limits, ``nodeSelector``,
  ``tolerations``, ``affinity``, the PodScheduled condition, ``resourceVersion``;
- occupancy.py: ``nodeName`` and phase;
- efficiency.py / usage: the job container's requests and terminated state, the attempt
  label, ``nodeName``;
- watcher.py itself: name, ``resourceVersion``, ``creationTimestamp``, the owning Job.

Strings other than names and versions are interned, and equal specs and statuses are one
shared object: 10,000 Pending pods of one rule carry the same spec and the same scheduler
message. What is left per object is about 0.2 KiB. Readers never change
a cached object. A reader that needs another field adds it here; the tests judge the full
and the projected object of every recorded state alike.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from snakemake_executor_plugin_kubernetes.naming import ATTEMPT_LABEL

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
CONDITION_FIELDS = ("type", "status", "reason", "message")
FIELDS = ("metadata", "spec", "status")
# Distinct specs and statuses remembered for sharing; past it the memory starts afresh
# (objects already cached keep what they share), so unique statuses cannot pile up.
SHARED_LIMIT = 4096
_shared: dict[str, Any] = {}


def _share(value: dict[str, Any]) -> dict[str, Any]:
    """The one cached object equal to `value`."""
    key = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(_shared) >= SHARED_LIMIT:
        _shared.clear()
    return _shared.setdefault(key, value)


def _interned(value: Any) -> Any:
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(k): _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    return value


def _pick(source: dict[str, Any] | None, fields: tuple[str, ...]) -> dict[str, Any]:
    source = source or {}
    return {f: _interned(source[f]) for f in fields if source.get(f) is not None}


def _conditions(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [_pick(c, CONDITION_FIELDS) for c in status.get("conditions") or []]


def _containers(spec: dict[str, Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [_pick(c, fields) for c in spec.get("containers") or []]


class CachedObject(Mapping[str, Any]):
    """A cached Job or Pod: a read-only mapping with the object's shape ("metadata",
    "spec", "status") over a few slots. The per-object part is only the names and the
    version: a dict per object (and a metadata dict inside it) would cost about four
    times as much at 10,000 jobs. ``metadata`` is made afresh at each reading."""

    __slots__ = ("name", "spec", "status", "version")

    def __init__(self, name: str, version: str, spec: dict[str, Any], status: dict[str, Any]):
        self.name = name
        self.version = version
        self.spec = spec
        self.status = status

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "resourceVersion": self.version}

    # dict.get's speed matters: status rounds read every cached object.
    def get(self, key: str, default: Any = None) -> Any:
        if key == "status":
            return self.status
        if key == "spec":
            return self.spec
        if key == "metadata":
            return self.metadata()
        return default

    def __getitem__(self, key: str) -> Any:
        if key in FIELDS:
            return self.get(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


class CachedJob(CachedObject):
    __slots__ = ()


class CachedPod(CachedObject):
    """A Pod; ``job`` is the owning Job's name (the same string as that Job's cached name)
    and ``attempt`` the attempt label, both None when the pod has none."""

    __slots__ = ("attempt", "created", "job")

    def __init__(
        self,
        name: str,
        version: str,
        spec: dict[str, Any],
        status: dict[str, Any],
        created: str | None,
        job: str | None,
        attempt: str | None,
    ):
        super().__init__(name, version, spec, status)
        self.created = created
        self.job = job
        self.attempt = attempt

    def metadata(self) -> dict[str, Any]:
        metadata = super().metadata()
        if self.created is not None:
            metadata["creationTimestamp"] = self.created
        if self.attempt is not None:
            metadata["labels"] = {ATTEMPT_LABEL: self.attempt}
        if self.job is not None:
            metadata["ownerReferences"] = [{"kind": "Job", "name": self.job}]
        return metadata


def name_of(obj: Mapping[str, Any]) -> str | None:
    """An object's name, cached or whole; a record's without making its metadata (status
    rounds ask for every pod's name several times)."""
    if isinstance(obj, CachedObject):
        return obj.name
    return (obj.get("metadata") or {}).get("name")


def version_of(obj: Mapping[str, Any]) -> str:
    if isinstance(obj, CachedObject):
        return obj.version
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


def _intern(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else None


def owning_job(obj: Mapping[str, Any]) -> str | None:
    """The name of the Job a pod belongs to (its Job owner reference, else the job-name
    label), whole or cached."""
    if isinstance(obj, CachedPod):
        return obj.job
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("name"):
            return ref["name"]
    labels = meta.get("labels") or {}
    return next((labels[label] for label in JOB_NAME_LABELS if labels.get(label)), None)


def project_job(job: dict[str, Any]) -> CachedJob:
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    status = job.get("status") or {}
    template_spec = _pick(pod_spec, ("activeDeadlineSeconds",))
    template_spec["containers"] = _containers(pod_spec, ("name", "resources"))
    return CachedJob(
        # Interned: the Job's pods name it as their owner, and share this one string.
        name=sys.intern(meta.get("name") or ""),
        version=meta.get("resourceVersion") or "",
        spec=_share(
            {**_pick(spec, ("activeDeadlineSeconds",)), "template": {"spec": template_spec}}
        ),
        status=_share(
            {**_pick(status, ("active", "succeeded", "failed")), "conditions": _conditions(status)}
        ),
    )


def project_pod(pod: dict[str, Any]) -> CachedPod:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    projected_spec = _pick(spec, ("nodeName", "nodeSelector", "tolerations", "affinity"))
    projected_spec["containers"] = _containers(spec, ("name", "image", "resources"))
    projected_status = _pick(status, ("phase", "reason", "message"))
    projected_status["conditions"] = _conditions(status)
    projected_status["containerStatuses"] = [
        _pick(s, ("name", "state", "lastState")) for s in status.get("containerStatuses") or []
    ]
    return CachedPod(
        name=meta.get("name") or "",
        version=meta.get("resourceVersion") or "",
        spec=_share(projected_spec),
        status=_share(projected_status),
        # Pods created in the same second share one timestamp string.
        created=_intern(meta.get("creationTimestamp")),
        job=_intern(owning_job(pod)),
        attempt=_intern((meta.get("labels") or {}).get(ATTEMPT_LABEL)),
    )


def project(kind: str, obj: dict[str, Any]) -> CachedJob | CachedPod:
    """The cached form of a watched object; `kind` is "jobs" or "pods"."""
    return project_pod(obj) if kind == "pods" else project_job(obj)
