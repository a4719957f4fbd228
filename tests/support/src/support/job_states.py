"""Job and Pod objects in the states the executor judges, for outcome tests."""

from __future__ import annotations

from typing import Any

from snakemake_executor_plugin_kubernetes.outcomes import Limits

LIMITS = Limits(disruption_retries=2, unschedulable_timeout=600, image_pull_grace=180)


def job(*conditions: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "snakemake", "resources": {"limits": {"memory": "500M"}}}
    return {
        "metadata": {"name": "sm-x-1"},
        "spec": {"template": {"spec": {"containers": [container], "activeDeadlineSeconds": 120}}},
        "status": {"conditions": list(conditions)},
    }


def pod(name: str = "sm-x-1-a", phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": "node-2", "containers": [{"name": "snakemake", "image": "img:1"}]},
        "status": {"phase": phase, **status},
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}}
    return {"containerStatuses": [{"name": "snakemake", "state": state}]}
