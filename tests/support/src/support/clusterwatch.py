"""Record every Kubernetes object and pod log a workflow run produces, for after-the-fact checks.

Polls the API while Snakemake runs (objects may live only seconds), so that tests can scan
what existed at any point: for leaked secrets, for paths of the submitting folder, for counts.
Pods and Jobs are also watched: a failed pod's terminated state may last less than one poll
before the executor deletes its Job, and a watch delivers every version in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch

RUN_LABEL = "snakemake.io/run-id"
STREAMED_KINDS = ("pods", "jobs")
# Pods are also listed by the poll, which needs the current pods to read their logs.
POLLED_KINDS = ("pods", "secrets", "configmaps", "events")
WATCH_WINDOW_SECONDS = 2  # how long stop() may wait for a watch to notice


@dataclass
class Recording:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    pod_logs: dict[str, str] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for (k, _, _), obj in self.objects.items() if k == kind]

    def of_run(self, kind: str, run_id: str) -> list[dict[str, Any]]:
        """The latest recorded version of each object of this kind labelled with the run id."""
        latest: dict[str, dict[str, Any]] = {}
        for (k, name, _), obj in self.objects.items():
            labels = obj.get("metadata", {}).get("labels") or {}
            if k == kind and labels.get(RUN_LABEL) == run_id:
                latest[name] = obj
        return list(latest.values())

    def run_ids(self) -> set[str]:
        return {
            labels[RUN_LABEL]
            for obj in self.objects.values()
            if RUN_LABEL in (labels := obj.get("metadata", {}).get("labels") or {})
        }

    def texts_outside_secrets(self) -> Iterator[tuple[str, str]]:
        """(description, text) of every recorded object except Secrets, and every pod log."""
        for (kind, name, version), obj in self.objects.items():
            if kind != "secrets":
                yield f"{kind}/{name}@{version}", json.dumps(obj)
        for pod, text in self.pod_logs.items():
            yield f"log of pod {pod}", text


def _lister(api: client.ApiClient, kind: str) -> Any:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    return {
        "pods": core.list_namespaced_pod,
        "jobs": batch.list_namespaced_job,
        "secrets": core.list_namespaced_secret,
        "configmaps": core.list_namespaced_config_map,
        "events": core.list_namespaced_event,
    }[kind]


def _list(api: client.ApiClient, kind: str, namespace: str) -> list[Any]:
    return _lister(api, kind)(namespace, _request_timeout=10).items


class ClusterRecorder:
    def __init__(self, api: client.ApiClient, namespace: str, interval: float = 0.5) -> None:
        self.api = api
        self.namespace = namespace
        self.interval = interval
        self.recording = Recording()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cluster-recorder", daemon=True)
        self._streams = [
            threading.Thread(target=self._stream, args=(kind,), name=f"watch-{kind}", daemon=True)
            for kind in STREAMED_KINDS
        ]
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        meta = data.get("metadata", {})
        key = (kind, meta.get("name", ""), meta.get("resourceVersion", ""))
        with self._lock:
            self.recording.objects[key] = data

    def _poll(self) -> None:
        for kind in POLLED_KINDS:
            for item in _list(self.api, kind, self.namespace):
                data = self.api.sanitize_for_serialization(item)
                self._record(kind, data)
                if kind == "pods":
                    self._capture_log(data)

    def _stream(self, kind: str) -> None:
        """List, then watch from the list's version; start over when the version expired."""
        lister = _lister(self.api, kind)
        while not self._stop.is_set():
            try:
                listed = lister(self.namespace, _request_timeout=10)
                for item in listed.items:
                    self._record(kind, self.api.sanitize_for_serialization(item))
                version = listed.metadata.resource_version
                while not self._stop.is_set():
                    stream = watch.Watch().stream(
                        lister,
                        self.namespace,
                        resource_version=version,
                        timeout_seconds=WATCH_WINDOW_SECONDS,
                        _request_timeout=WATCH_WINDOW_SECONDS + 10,
                    )
                    for event in stream:
                        data = event["raw_object"]
                        self._record(kind, data)
                        version = data.get("metadata", {}).get("resourceVersion", version)
            except client.ApiException as error:
                if error.status != 410:
                    self.errors.append(repr(error))
                    self._stop.wait(self.interval)
            except Exception as error:  # keep recording; the test reports errors if it cares
                self.errors.append(repr(error))
                self._stop.wait(self.interval)

    def _capture_log(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if not any(
            s.get("state", {}).get("running") or s.get("state", {}).get("terminated")
            for s in statuses
        ):
            return
        try:
            text = client.CoreV1Api(self.api).read_namespaced_pod_log(
                name, self.namespace, _request_timeout=10
            )
        except client.ApiException:
            return  # the pod went away between listing and reading: keep what we had
        if len(text) >= len(self.recording.pod_logs.get(name, "")):
            self.recording.pod_logs[name] = text

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except Exception as error:  # keep recording; the test reports errors if it cares
                self.errors.append(repr(error))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()
        for stream in self._streams:
            stream.start()

    def stop(self) -> Recording:
        self._stop.set()
        for thread in (self._thread, *self._streams):
            thread.join(timeout=30)
        self._poll()
        return self.recording


@contextmanager
def recording(api: client.ApiClient, namespace: str = "default") -> Iterator[ClusterRecorder]:
    recorder = ClusterRecorder(api, namespace)
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


def leftovers(api: client.ApiClient, run_id: str, namespace: str = "default") -> list[str]:
    """Names of Pods, Jobs and Secrets of the run that still exist."""
    selector = f"{RUN_LABEL}={run_id}"
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    found = []
    for kind, lister in (
        ("pod", core.list_namespaced_pod),
        ("job", batch.list_namespaced_job),
        ("secret", core.list_namespaced_secret),
    ):
        found += [
            f"{kind}/{o.metadata.name}" for o in lister(namespace, label_selector=selector).items
        ]
    return found


def existing_run_ids(api: client.ApiClient, namespace: str = "default") -> set[str]:
    """Run ids on any Pod, Job or Secret right now (left by earlier tests, say)."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    ids = set()
    for lister in (
        core.list_namespaced_pod,
        batch.list_namespaced_job,
        core.list_namespaced_secret,
    ):
        for obj in lister(namespace, label_selector=RUN_LABEL).items:
            ids.add(obj.metadata.labels[RUN_LABEL])
    return ids


def wait_for_no_leftovers(
    api: client.ApiClient, run_id: str, namespace: str = "default", patience: float = 60.0
) -> list[str]:
    """Leftovers once garbage collection had time to act (Jobs go first, their Pods after)."""
    deadline = time.monotonic() + patience
    while (remaining := leftovers(api, run_id, namespace)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return remaining


def local_pod_logs(state_dir: Path) -> dict[str, str]:
    """Every container log file the local cluster's node agent wrote (absent on real clusters)."""
    return (
        {
            str(path.relative_to(state_dir)): path.read_text(errors="replace")
            for path in (state_dir / "pods").rglob("*.log")
        }
        if (state_dir / "pods").is_dir()
        else {}
    )
