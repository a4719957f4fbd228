"""Print the workflow's pods as they change state while Snakemake runs (a poor man's -w)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

RUN_LABEL = "snakemake.io/run-id"
RULE_LABEL = "snakemake.io/rule"


def pod_state(pod: Any) -> str:
    """Phase plus the container's waiting/terminated reason, like kubectl's STATUS column."""
    for status in pod.status.container_statuses or []:
        if status.state.waiting and status.state.waiting.reason:
            return status.state.waiting.reason
        if status.state.terminated and status.state.terminated.reason:
            return status.state.terminated.reason
    return pod.status.phase or "Unknown"


class PodWatcher:
    def __init__(
        self,
        kubeconfig: Path,
        namespace: str = "default",
        interval: float = 1.0,
        emit: Callable[[str], None] = print,
    ) -> None:
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self._core = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._interval = interval
        self._emit = emit
        self._seen: dict[str, str] = {}
        # Pods of earlier runs (finished, or left behind by a killed one) are not this run's.
        self._since = datetime.now(UTC).replace(microsecond=0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pod-watcher", daemon=True)

    def __enter__(self) -> PodWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                pods = self._core.list_namespaced_pod(
                    self._namespace, label_selector=RUN_LABEL, _request_timeout=10
                ).items
            except Exception as error:  # the watcher only informs; the run decides success
                self._emit(f"  [pods] cannot list pods right now: {type(error).__name__}")
                continue
            for pod in pods:
                created = pod.metadata.creation_timestamp
                if created is not None and created < self._since:
                    continue
                name = pod.metadata.name
                state = pod_state(pod)
                if self._seen.get(name) != state:
                    rule = (pod.metadata.labels or {}).get(RULE_LABEL, "?")
                    node = pod.spec.node_name or "-"
                    self._emit(f"  [pods] {name:<48} rule={rule:<15} node={node:<10} {state}")
                    self._seen[name] = state
