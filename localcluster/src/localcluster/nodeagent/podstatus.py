"""Edits of a pod's status in the shapes the real kubelet and scheduler write."""

from __future__ import annotations

from typing import Any

from localcluster.nodeagent.nodeobjects import now_rfc3339


def set_condition(
    pod: dict[str, Any], kind: str, status: bool, reason: str | None = None, message: str = ""
) -> None:
    """Insert or update one pod condition; lastTransitionTime moves only on a status change."""
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    text = "True" if status else "False"
    for condition in conditions:
        if condition["type"] == kind:
            if condition.get("status") != text:
                condition["lastTransitionTime"] = now_rfc3339()
            condition["status"] = text
            _set_reason(condition, reason, message)
            return
    condition = {
        "type": kind,
        "status": text,
        "lastProbeTime": None,
        "lastTransitionTime": now_rfc3339(),
    }
    _set_reason(condition, reason, message)
    conditions.append(condition)


def _set_reason(condition: dict[str, Any], reason: str | None, message: str) -> None:
    for key, value in (("reason", reason), ("message", message)):
        if value:
            condition[key] = value
        else:
            condition.pop(key, None)


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {"waiting": state}


def running(started_at: str) -> dict[str, Any]:
    return {"running": {"startedAt": started_at}}


def terminated(
    exit_code: int, reason: str, started_at: str | None, message: str = "", container_id: str = ""
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started_at,
        "finishedAt": now_rfc3339(),
    }
    if message:
        state["message"] = message
    if container_id:
        state["containerID"] = container_id
    return {"terminated": state}


def container_status(
    container: dict[str, Any],
    state: dict[str, Any],
    restart_count: int = 0,
    container_id: str = "",
    last_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": "running" in state,
        "started": "running" in state,
        "restartCount": restart_count,
        "state": state,
        "lastState": last_state or {},
    }
    if container_id:
        status["containerID"] = container_id
        status["imageID"] = f"localcluster://{container.get('image', '')}"
    return status


def phase_from_states(states: list[dict[str, Any]], restart_policy: str) -> str:
    """Pod phase from the containers' current states (after they have started)."""
    if any("running" in state for state in states):
        return "Running"
    if all("terminated" in state for state in states):
        codes = [state["terminated"]["exitCode"] for state in states]
        if all(code == 0 for code in codes):
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"
