"""The part of a Job or Pod that the watch cache keeps: what the status rounds read.

A decoded Pod holds the whole rendered job (command line, environment, volumes, managed
fields), several kilobytes; the status rounds read a few dozen fields of it. At 10,000
Pending jobs the cache holds 20,000 objects, so it keeps a projection of the same shape
(readers go on using ``obj.get("status")``) with only the fields read by:

- outcomes.py: Job conditions, the job container's resources in the Job's pod template,
  ``activeDeadlineSeconds``; pod phase, reason, message, conditions, container states,
  ``nodeName``, container images;
- placement.py / clusterview.py: pod requests and limits, ``nodeSelector``,
  ``tolerations``, ``affinity``, the PodScheduled condition, ``resourceVersion``;
- occupancy.py: ``nodeName`` and phase;
- efficiency.py / usage: the job container's requests and terminated state, the attempt
  label, ``nodeName``;
- watcher.py itself: name, ``resourceVersion``, ``creationTimestamp``, the owning Job.

Strings are interned, and equal specs and statuses are one shared object: 10,000 Pending
pods of one rule carry the same spec and the same scheduler message. Readers never change
a cached object. A reader that needs another field adds it here; the tests judge the full
and the projected object of every recorded state alike.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from snakemake_executor_plugin_kubernetes.naming import ATTEMPT_LABEL

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
POD_LABELS = (*JOB_NAME_LABELS, ATTEMPT_LABEL)
CONDITION_FIELDS = ("type", "status", "reason", "message")
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


def _metadata(meta: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    # Names and versions are unique per object: interning them would only cost.
    return {f: meta[f] for f in fields if meta.get(f) is not None}


def project_job(job: dict[str, Any]) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    status = job.get("status") or {}
    template_spec = _pick(pod_spec, ("activeDeadlineSeconds",))
    template_spec["containers"] = _containers(pod_spec, ("name", "resources"))
    return {
        "metadata": _metadata(meta, ("name", "resourceVersion", "uid")),
        "spec": _share(
            {**_pick(spec, ("activeDeadlineSeconds",)), "template": {"spec": template_spec}}
        ),
        "status": _share(
            {**_pick(status, ("active", "succeeded", "failed")), "conditions": _conditions(status)}
        ),
    }


def project_pod(pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    metadata = _metadata(meta, ("name", "resourceVersion", "creationTimestamp"))
    labels = _pick(meta.get("labels"), POD_LABELS)
    if labels:
        metadata["labels"] = labels
    owners = [
        _pick(ref, ("kind", "name"))
        for ref in meta.get("ownerReferences") or []
        if ref.get("kind") == "Job"
    ]
    if owners:
        metadata["ownerReferences"] = owners
    projected_spec = _pick(spec, ("nodeName", "nodeSelector", "tolerations", "affinity"))
    projected_spec["containers"] = _containers(spec, ("name", "image", "resources"))
    projected_status = _pick(status, ("phase", "reason", "message"))
    projected_status["conditions"] = _conditions(status)
    projected_status["containerStatuses"] = [
        _pick(s, ("name", "state", "lastState")) for s in status.get("containerStatuses") or []
    ]
    return {
        "metadata": metadata,
        "spec": _share(projected_spec),
        "status": _share(projected_status),
    }


def project(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The cached form of a watched object; `kind` is "jobs" or "pods"."""
    return project_pod(obj) if kind == "pods" else project_job(obj)
