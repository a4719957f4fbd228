"""Field defaulting the real API server applies on create/update (a practical subset)."""

from __future__ import annotations

import base64
from typing import Any

from localcluster.quantity import parse_quantity


def apply(resource: str, obj: dict[str, Any]) -> None:
    """Idempotent defaults; safe to run on every write."""
    obj.setdefault("metadata", {})
    if resource == "pods":
        _default_pod_spec(obj.setdefault("spec", {}))
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif resource == "jobs":
        _default_job(obj)
    elif resource == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif resource == "secrets":
        obj.setdefault("type", "Opaque")
        # stringData is write-only: the server folds it into data (base64).
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
    elif resource == "events":
        obj.setdefault("type", "Normal")
    elif resource == "limitranges":
        _default_limit_range(obj)


def _default_limit_range(obj: dict[str, Any]) -> None:
    """pkg/apis/core/v1/defaults.go SetDefaults_LimitRangeItem: for Container items a missing
    default limit is the max, and a missing default request is the default limit."""
    for item in (obj.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = item.setdefault("default", {})
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        request = item.setdefault("defaultRequest", {})
        for name, value in default.items():
            request.setdefault(name, value)
        for key in ("default", "defaultRequest"):
            if not item[key]:
                del item[key]


def after_identity(resource: str, obj: dict[str, Any]) -> None:
    """Defaults that need the new object's uid (only on create)."""
    metadata = obj["metadata"]
    if resource == "namespaces":
        metadata.setdefault("labels", {})["kubernetes.io/metadata.name"] = metadata["name"]
    elif resource == "jobs":
        spec = obj["spec"]
        if not spec.get("manualSelector"):
            uid = metadata["uid"]
            job_labels = {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": metadata["name"],
                "controller-uid": uid,
                "job-name": metadata["name"],
            }
            template_meta = spec["template"].setdefault("metadata", {})
            template_meta.setdefault("labels", {}).update(job_labels)
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    elif resource == "pods":
        obj["status"]["qosClass"] = qos_class(obj["spec"])


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        uses_latest = ":" not in tag or tag.endswith(":latest")
        if "@" not in image:
            container.setdefault("imagePullPolicy", "Always" if uses_latest else "IfNotPresent")
        else:
            container.setdefault("imagePullPolicy", "IfNotPresent")
        resources = container["resources"]
        # A limit without a request implies an equal request.
        if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
            requests = resources.setdefault("requests", {})
            if isinstance(requests, dict):
                for name, value in resources["limits"].items():
                    requests.setdefault(name, value)


def _default_job(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    if isinstance(template, dict):
        _default_pod_spec(template.setdefault("spec", {}))
    obj.setdefault("status", {})


def qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits:
                guaranteed = False
            elif name in requests:
                try:
                    if parse_quantity(requests[name]) != parse_quantity(limits[name]):
                        guaranteed = False
                except ValueError:
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
