"""The test suite's one cluster observer: it watches what a workflow run does to the cluster.

For each kind it lists, then watches from the list's resourceVersion (a watch delivers every
version in order, so a failed pod whose terminated state lasts less than any poll is still
seen), resumes after a stream ends and lists again after a 410 or a broken stream, as an
informer does. It keeps every version of every object, the latest of each, each pod's phases
and the times it was first seen running and finished, and the log of each pod seen finished.

Its requests carry the user agent ``localcluster-observer``: the local cluster's fault
injection and watch expiry pass them by (it watches what happens, it must not change it),
and tests tell its requests apart from the executor's in the request log.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.requestlog import OBSERVER_USER_AGENT
from localcluster.testing import WAIT_SECONDS, poll, wait_until

RUN_ID_LABEL = "snakemake.io/run-id"
RULE_LABEL = "snakemake.io/rule"
KIND_OF = {
    "jobs": "Job",
    "pods": "Pod",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "events": "Event",
}
RUN_KINDS = ("jobs", "pods", "secrets")
ALL_KINDS = tuple(KIND_OF)
FINISHED_PHASES = ("Succeeded", "Failed")
WATCH_WINDOW_SECONDS = 2  # how long stop() may wait for a watch to notice


def _kind(kind: str) -> str:
    """ "Pod" for "pods" or "Pod"."""
    return KIND_OF.get(kind, kind)


def api_client_for(kubeconfig: Path, user_agent: str = OBSERVER_USER_AGENT) -> Any:
    """A kubernetes ApiClient on the kubeconfig's cluster that never retries by itself."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.retries = 0
    api = client.ApiClient(configuration)
    api.user_agent = user_agent
    return api


def _own_client(configuration: Any) -> Any:
    """A client on another client's cluster, with the observer's user agent."""
    from kubernetes import client

    api = client.ApiClient(configuration)
    api.user_agent = OBSERVER_USER_AGENT
    return api


def _lister(api: Any, kind: str) -> Any:
    from kubernetes import client

    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    return {
        "jobs": batch.list_namespaced_job,
        "pods": core.list_namespaced_pod,
        "secrets": core.list_namespaced_secret,
        "configmaps": core.list_namespaced_config_map,
        "events": core.list_namespaced_event,
    }[kind]


def _list(api: Any, kind: str, namespace: str, selector: str | None) -> dict[str, Any]:
    extra = {"label_selector": selector} if selector else {}
    reply = _lister(api, kind)(namespace, _preload_content=False, _request_timeout=10, **extra)
    return json.loads(reply.data)


@dataclass
class Observation:
    """Everything seen of the cluster while the observer ran."""

    versions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pod_logs: dict[str, str] = field(default_factory=dict)
    pod_phases: dict[str, list[str]] = field(default_factory=dict)
    running_at: dict[str, float] = field(default_factory=dict)
    finished_at: dict[str, float] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    # Held by the observer's threads while they record; every reader here takes it too,
    # so a test may read while the observer runs (a dict changing size mid-iteration
    # would raise in the reader's thread).
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The latest version of each object of a kind ("Pod" or "pods")."""
        with self.lock:
            return [obj for (k, _), obj in self.objects.items() if k == _kind(kind)]

    def latest(self) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        """((kind, name), latest version) of every object seen so far."""
        with self.lock:
            return list(self.objects.items())

    def of_run(self, kind: str, run_id: str) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.of_kind(kind)
            if (obj["metadata"].get("labels") or {}).get(RUN_ID_LABEL) == run_id
        ]

    @property
    def run_ids(self) -> set[str]:
        return {
            labels[RUN_ID_LABEL]
            for _, obj in self.latest()
            if RUN_ID_LABEL in (labels := obj["metadata"].get("labels") or {})
        }

    def texts_outside_secrets(self) -> Iterator[tuple[str, str]]:
        """(description, text) of every version of every object but Secrets, and pod logs."""
        with self.lock:
            versions = list(self.versions.items())
            logs = list(self.pod_logs.items())
        for (kind, name, version), obj in versions:
            if kind != "Secret":
                yield f"{kind}/{name}@{version}", json.dumps(obj)
        for pod, text in logs:
            yield f"log of pod {pod}", text

    def last_completion(self) -> float | None:
        with self.lock:
            return max(self.finished_at.values(), default=None)

    def run_seconds(self) -> list[float]:
        """Seen running to seen finished, per pod seen in both."""
        with self.lock:
            return [
                self.finished_at[name] - self.running_at[name]
                for name in self.finished_at
                if name in self.running_at
            ]


class ClusterObserver:
    """``with ClusterObserver(kubeconfig_or_api_client, namespace) as observer:`` then
    ``observer.seen`` (live) or the Observation ``stop()`` returns.

    By default it follows the objects of Snakemake runs (Jobs, Pods and Secrets with a run-id
    label) that did not exist when it started; ``kinds`` adds others (ConfigMaps, Events),
    ``everything=True`` drops the label filter and keeps the objects that existed before."""

    def __init__(
        self,
        cluster: Path | Any,
        namespace: str = "default",
        kinds: tuple[str, ...] = RUN_KINDS,
        *,
        everything: bool = False,
        capture_logs: bool = True,
    ) -> None:
        self.api = (
            api_client_for(cluster)
            if isinstance(cluster, str | Path)
            else _own_client(cluster.configuration)
        )
        self.namespace = namespace
        self.kinds = kinds
        self.selector = None if everything else RUN_ID_LABEL
        self.capture_logs = capture_logs
        self.seen = Observation()
        self.errors: list[str] = []
        self._lock = self.seen.lock
        self._stop = threading.Event()
        self.baseline = set() if everything else self.labelled_names()
        self._threads = [
            threading.Thread(target=self._follow, args=(kind,), name=f"observe-{kind}", daemon=True)
            for kind in kinds
        ]

    # ----- what is there now ---------------------------------------------------------------
    def _selector_for(self, kind: str) -> str | None:
        return None if kind == "events" else self.selector

    def labelled_names(self) -> set[tuple[str, str]]:
        """(Kind, name) of every object of a run (run-id label) in the namespace now."""
        return {
            (_kind(kind), item["metadata"]["name"])
            for kind in RUN_KINDS
            for item in _list(self.api, kind, self.namespace, RUN_ID_LABEL)["items"]
        }

    def leftovers(self) -> set[tuple[str, str]]:
        return self.labelled_names() - self.baseline

    def events(self) -> list[dict[str, Any]]:
        return _list(self.api, "events", self.namespace, None)["items"]

    # ----- following -----------------------------------------------------------------------
    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (_kind(kind), meta.get("name", ""))
        if key in self.baseline:
            return
        with self._lock:
            self.seen.versions[(*key, meta.get("resourceVersion", ""))] = obj
            self.seen.objects[key] = obj
        if kind == "pods":
            self._record_pod(obj)

    def _record_pod(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase", "")
        now = time.time()
        with self._lock:
            phases = self.seen.pod_phases.setdefault(name, [])
            if not phases or phases[-1] != phase:
                phases.append(phase)
            if phase == "Running":
                self.seen.running_at.setdefault(name, now)
            if phase not in FINISHED_PHASES or name in self.seen.finished_at:
                return
            self.seen.finished_at[name] = now
            if phase == "Failed":
                self.seen.failed.add(name)
        if self.capture_logs:
            from kubernetes import client

            # The pod may be gone before its log could be read, or never have started.
            with contextlib.suppress(Exception):
                text = client.CoreV1Api(self.api).read_namespaced_pod_log(
                    name, self.namespace, _request_timeout=10
                )
                with self._lock:
                    self.seen.pod_logs[name] = text

    def _list_into_seen(self, kind: str) -> str:
        listed = _list(self.api, kind, self.namespace, self._selector_for(kind))
        for item in listed["items"]:
            self._record(kind, item)
        return listed["metadata"]["resourceVersion"]

    def _follow(self, kind: str) -> None:
        """List, then watch from the list's version; list again when the version expired."""
        from kubernetes import client, watch

        selector = self._selector_for(kind)
        extra = {"label_selector": selector} if selector else {}
        while not self._stop.is_set():
            try:
                version = self._list_into_seen(kind)
                while not self._stop.is_set():
                    stream = watch.Watch().stream(
                        _lister(self.api, kind),
                        self.namespace,
                        resource_version=version,
                        timeout_seconds=WATCH_WINDOW_SECONDS,
                        _request_timeout=WATCH_WINDOW_SECONDS + 10,
                        **extra,
                    )
                    for event in stream:
                        data = event["raw_object"]
                        self._record(kind, data)
                        version = data.get("metadata", {}).get("resourceVersion", version)
            except client.ApiException as error:
                if error.status != 410:
                    self.errors.append(repr(error))
                    self._stop.wait(0.5)
            except Exception as error:  # keep observing; a test reports errors if it cares
                self.errors.append(repr(error))
                self._stop.wait(0.5)

    def start(self) -> ClusterObserver:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Observation:
        """Stop following, then list once more: the final state of what is left."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for kind in self.kinds:
            with contextlib.suppress(Exception):  # e.g. a fault injected at the very end
                self._list_into_seen(kind)
        return self.seen

    def __enter__(self) -> ClusterObserver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_pod(
        self, rule: str, phase: str = "Running", timeout: float = 120
    ) -> dict[str, Any]:
        """The first pod of ``rule`` seen in ``phase``."""

        def found() -> dict[str, Any] | None:
            with self._lock:
                pods = list(self.seen.of_kind("Pod"))
            return next(
                (
                    pod
                    for pod in pods
                    if (pod["metadata"].get("labels") or {}).get(RULE_LABEL) == rule
                    and (pod.get("status") or {}).get("phase") == phase
                ),
                None,
            )

        return wait_until(found, f"a pod of rule {rule!r} in phase {phase}", timeout)


# ----- questions about runs, asked once ----------------------------------------------------
def run_objects_left(api: Any, run_id: str, namespace: str = "default") -> list[str]:
    """kind/name of the run's Pods, Jobs and Secrets that still exist."""
    selector = f"{RUN_ID_LABEL}={run_id}"
    return [
        f"{_kind(kind).lower()}/{item['metadata']['name']}"
        for kind in ("pods", "jobs", "secrets")
        for item in _list(api, kind, namespace, selector)["items"]
    ]


def existing_run_ids(api: Any, namespace: str = "default") -> set[str]:
    """Run ids on any Pod, Job or Secret right now (left by earlier tests, say)."""
    return {
        item["metadata"]["labels"][RUN_ID_LABEL]
        for kind in RUN_KINDS
        for item in _list(api, kind, namespace, RUN_ID_LABEL)["items"]
    }


def wait_for_no_leftovers(
    api: Any, run_id: str, namespace: str = "default", patience: float = WAIT_SECONDS * 2
) -> list[str]:
    """What is left of the run once garbage collection had ``patience`` seconds to act
    (Jobs go first, their Pods after); empty when nothing is."""
    poll(lambda: not run_objects_left(api, run_id, namespace), patience)
    return run_objects_left(api, run_id, namespace)


def local_pod_logs(state_dir: Path) -> dict[str, str]:
    """Every container log file the local cluster's node agent wrote (none on real clusters)."""
    folder = Path(state_dir) / "pods"
    if not folder.is_dir():
        return {}
    return {
        str(path.relative_to(state_dir)): path.read_text(errors="replace")
        for path in folder.rglob("*.log")
    }
