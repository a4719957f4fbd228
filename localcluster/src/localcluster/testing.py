"""Helpers for tests that drive the local cluster: manifests, pod outcomes, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# A hang guard for polling, not a performance bound: generous on a loaded 2-core runner.
WAIT_SECONDS = 30.0


def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS, interval: float = 0.05
) -> T:
    """Poll until probe() returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def container(name: str = "main", image: str = "snakemake/snakemake:v9", **extra: Any) -> dict:
    return {"name": name, "image": image, "command": ["true"], **extra}


def pod_manifest(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"restartPolicy": "Never", "containers": [container()], **spec},
    }


def job_manifest(name: str, **spec: Any) -> dict:
    template_spec = spec.pop("template_spec", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"restartPolicy": "Never", "containers": [container()], **template_spec},
            },
            **spec,
        },
    }


def finish_pod(
    core: Any,
    namespace: str,
    name: str,
    phase: str,
    exit_code: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
    container_name: str = "main",
) -> Any:
    """Play the kubelet: mark a pod Succeeded/Failed with a terminated container status."""
    code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": container_name,
                "image": "snakemake/snakemake:v9",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                    }
                },
            }
        ],
    }
    if conditions:
        status["conditions"] = conditions
    return core.patch_namespaced_pod_status(name, namespace, {"status": status})


def job_pods(core: Any, namespace: str, job: str, phase: str | None = None) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return [p for p in pods if phase is None or p.status.phase == phase]


def condition_types(job: Any) -> list[str]:
    return [c.type for c in (job.status.conditions or []) if c.status == "True"]
