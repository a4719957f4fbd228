"""Termination messages as the kubelet makes them (terminationMessagePath/Policy).

The kubelet creates an empty file for each container instance and mounts it at the
container's `terminationMessagePath`; when the container ends it reads at most the last
4096 bytes of it (`getTerminationMessage` in pkg/kubelet/kuberuntime/kuberuntime_container.go,
`tail.ReadAtMost(path, kubecontainer.MaxContainerTerminationMessageLength)`, with
`MaxContainerTerminationMessageLength = 1024 * 4` in pkg/kubelet/container/runtime.go). With
`terminationMessagePolicy: FallbackToLogsOnError`, an empty file of a container that failed is
replaced by the last 80 lines, at most 2048 bytes, of its log
(`MaxContainerTerminationMessageLogLines`, `MaxContainerTerminationMessageLogLength`).

Here the file sits at the same path below the pod's root directory, where every other mount
of the pod is: a container process reaches it relative to its working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_PATH = "/dev/termination-log"
MAX_MESSAGE_BYTES = 4 * 1024
MAX_LOG_LINES = 80
MAX_LOG_BYTES = 2 * 1024


def message_file(root: Path, container: dict[str, Any]) -> Path:
    path = container.get("terminationMessagePath") or DEFAULT_PATH
    return root / path.lstrip("/")


def prepare(root: Path, container: dict[str, Any]) -> Path:
    """A fresh, empty file for a new container instance (a restart starts empty too)."""
    file = message_file(root, container)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(b"")
    return file


def _tail_bytes(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        return handle.read()


def read_message(root: Path, container: dict[str, Any], log_file: Path, exit_code: int) -> str:
    """The `message` of the container's terminated state."""
    try:
        data = _tail_bytes(message_file(root, container), MAX_MESSAGE_BYTES)
    except FileNotFoundError:
        data = b""
    except OSError as error:
        return f"Error on reading termination log {message_file(root, container)}: {error}"
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if data or not fallback or exit_code == 0:
        return data.decode("utf-8", errors="replace")
    try:
        tail = _tail_bytes(log_file, MAX_LOG_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(tail.splitlines()[-MAX_LOG_LINES:])
