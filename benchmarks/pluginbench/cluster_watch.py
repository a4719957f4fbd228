"""What the benchmark sees of the cluster while a workflow runs.

``PodCompletions`` watches the namespace's pods with a user agent of its own and notes
when each pod is first seen finished (Succeeded or Failed), so the time from the last
completion to Snakemake's exit can be measured. ``RequestCollector`` polls the local
cluster's request log and keeps every record exactly once: the log is append-only in
time order and trims its oldest tenth when full, so a time cursor, polled more often
than the log can fill, misses nothing; if it ever did, ``overflowed`` says so.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

OBSERVER_AGENT = "snakemake-bench-observer"
FINISHED_PHASES = ("Succeeded", "Failed")


class PodCompletions:
    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        self._api = client.ApiClient(configuration)
        self._api.user_agent = OBSERVER_AGENT
        self._core = client.CoreV1Api(self._api)
        self.namespace = namespace
        self.finished: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.failed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pod-completions", daemon=True)

    def _note(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Running":
            self.running.setdefault(name, time.time())
        if phase in FINISHED_PHASES and name not in self.finished:
            self.finished[name] = time.time()
            if phase == "Failed":
                self.failed.add(name)

    def _loop(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                listing = self._core.list_namespaced_pod(self.namespace, _preload_content=False)
                body = json.loads(listing.data)
                for pod in body["items"]:
                    self._note(pod)
                stream = watch.Watch()
                for event in stream.stream(
                    self._core.list_namespaced_pod,
                    self.namespace,
                    resource_version=body["metadata"]["resourceVersion"],
                    timeout_seconds=30,
                    _request_timeout=60,
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._note(self._api.sanitize_for_serialization(event["object"]))
                    if self._stop.is_set():
                        stream.stop()
            self._stop.wait(0.2)

    def start(self) -> PodCompletions:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=70)

    def last_completion(self) -> float | None:
        return max(self.finished.values(), default=None)

    def run_seconds(self) -> list[float]:
        """Seen Running to seen finished, per pod (pods seen in both phases)."""
        return [self.finished[n] - self.running[n] for n in self.finished if n in self.running]


class RequestCollector:
    """Accumulates the local cluster's request log from a background thread."""

    def __init__(self, control: Any, interval: float = 3.0) -> None:
        self._control = control
        self._interval = interval
        self.records: list[dict[str, Any]] = []
        self.overflowed = False
        self._cursor: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="request-log", daemon=True)

    def poll(self) -> None:
        with self._lock:
            records = self._control.requests()
            if records and self._cursor is not None and records[0]["time"] > self._cursor:
                self.overflowed = True
            fresh = [r for r in records if self._cursor is None or r["time"] > self._cursor]
            if fresh:
                self._cursor = fresh[-1]["time"]
            self.records += fresh

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self.poll()

    def start(self) -> RequestCollector:
        self._control.reset_requests()
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=60)
        self.poll()
        return [r for r in self.records if r.get("user_agent") != OBSERVER_AGENT]
