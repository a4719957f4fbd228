"""One watch on the run's Jobs and one on its Pods, feeding an in-memory cache.

Status rounds read the cache, so they cost no API requests however many jobs are
active. A watch that breaks or answers 410 Gone is followed by a fresh list.
"""

import enum
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from snakemake_executor_plugin_kubernetes.apierrors import ApiError
from snakemake_executor_plugin_kubernetes.cachefields import (
    CachedJob,
    CachedPod,
    name_of,
    owning_job,
    project,
    version_of,
)
from snakemake_executor_plugin_kubernetes.client import KubeClient
from snakemake_executor_plugin_kubernetes.memtrim import give_back_freed_memory
from snakemake_executor_plugin_kubernetes.paging import read_pages
from snakemake_executor_plugin_kubernetes.permissions import Access, explain, is_permanent
from snakemake_executor_plugin_kubernetes.retry import RetryPolicy


class WatchKind(enum.StrEnum):
    """A watched collection; the value is its plural in API paths and RBAC rules."""

    JOBS = "jobs"
    PODS = "pods"


# A watch resumed from its last resourceVersion misses nothing, and one that cannot resume
# (410 Gone, a broken stream) is followed by a list at once. The periodic list is only a
# safety net, so it is rare: on a 10,000-job run each one reads every Job and Pod.
RESYNC_SECONDS = 600
# Watches end after a random time between this and twice this, as client-go's reflector
# does (minWatchTimeout, tools/cache/reflector.go): watches opened together (the two of a
# run, those of many runs after an API server restart) do not all end and reopen together.
MIN_WATCH_TIMEOUT = 300.0


def _name(obj: Mapping[str, Any]) -> str:
    return name_of(obj) or ""


def _rv(obj: Mapping[str, Any]) -> int:
    """A Job's or Pod's resourceVersion as a number, whole or cached (0 if not one)."""
    try:
        return int(version_of(obj) or "0")
    except ValueError:
        return 0


JOB_END_CONDITIONS = ("Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")
POD_END_PHASES = ("Succeeded", "Failed")


def shows_an_ending(kind: WatchKind, obj: dict[str, Any]) -> bool:
    """Whether this version of a Job or pod may end a Snakemake job's run."""
    status = obj.get("status") or {}
    if kind == WatchKind.PODS:
        return status.get("phase") in POD_END_PHASES
    return any(
        c.get("type") in JOB_END_CONDITIONS and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _by_creation(pod: CachedPod) -> str:
    return pod.created or ""


class RunCache:
    """Jobs by name and pods grouped by owning Job; thread-safe. It keeps a small record
    of each object (see cachefields), not the decoded object."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, CachedJob] = {}
        self._pods: dict[str, CachedPod] = {}
        # Pods deleted before they finished (evicted, node lost), by owning Job: the
        # Job replaces them, and they count against the disruption budget.
        self._gone: dict[str, dict[str, CachedPod]] = {}
        self._synced = dict.fromkeys(WatchKind, False)
        self.relists = dict.fromkeys(WatchKind, 0)
        # Held while a watch re-lists: the Jobs' and the Pods' lists are read one after the
        # other, not at once. Two threads decoding pages together left the process 11.6 MiB
        # larger after a re-list of 10,000 of each, one at a time 3.0 (pages of 500).
        self.relisting = threading.Lock()
        # Set when a watched change may end a job (a Job's end condition, a pod's end
        # phase, a deletion), so the executor's next status round need not wait.
        self.endings = threading.Event()

    def _store(self, kind: WatchKind) -> dict[str, Any]:
        return self._jobs if kind == WatchKind.JOBS else self._pods

    def put(self, kind: WatchKind, obj: dict[str, Any], only_if_newer: bool = False) -> None:
        with self._lock:
            store = self._store(kind)
            known = store.get(_name(obj))
            if only_if_newer and known is not None and _rv(known) >= _rv(obj):
                return
            store[_name(obj)] = project(kind, obj)
        if shows_an_ending(kind, obj):
            self.endings.set()

    def remove(self, kind: WatchKind, obj: dict[str, Any]) -> None:
        with self._lock:
            self._store(kind).pop(_name(obj), None)
            phase = (obj.get("status") or {}).get("phase")
            if kind == WatchKind.PODS and phase not in POD_END_PHASES:
                job = owning_job(obj)
                if job:
                    self._gone.setdefault(job, {})[_name(obj)] = project(kind, obj)
                    self.endings.set()
            elif kind == WatchKind.JOBS:
                self.endings.set()

    def gone_pods(self, job_name: str) -> list[CachedPod]:
        with self._lock:
            return list(self._gone.get(job_name, {}).values())

    def forget_job(self, job_name: str) -> None:
        with self._lock:
            self._gone.pop(job_name, None)

    def merge_page(self, kind: WatchKind, items: list[dict[str, Any]]) -> set[str]:
        """Bring one page of a fresh list into the cache; returns the names it held.

        An object whose cached version is the listed one is left as it is: a periodic
        re-list of 10,000 unchanged Pods then allocates nothing but the page it reads."""
        seen = set()
        ended = False
        with self._lock:
            store = self._store(kind)
            for obj in items:
                name = _name(obj)
                seen.add(name)
                known = store.get(name)
                if known is not None and _rv(known) == _rv(obj):
                    continue
                # An ending the watch missed and the list brought counts like one it sent.
                ended = ended or (
                    shows_an_ending(kind, obj) and not shows_an_ending(kind, known or {})
                )
                store[name] = project(kind, obj)
        if ended:
            self.endings.set()
        return seen

    def finish_list(self, kind: WatchKind, listed: set[str], list_rv: str | None) -> None:
        """End a fresh list: drop what it no longer holds, unless newer than the list (e.g. a
        Job created while it was being read: the watch that follows confirms or removes it)."""
        newer_than = int(list_rv) if list_rv and list_rv.isdigit() else None
        with self._lock:
            store = self._store(kind)
            for name in [n for n in store if n not in listed]:
                if newer_than is None or _rv(store[name]) <= newer_than:
                    del store[name]
            self._synced[kind] = True
            self.relists[kind] += 1

    def synced(self) -> bool:
        with self._lock:
            return all(self._synced.values())

    def job(self, name: str) -> CachedJob | None:
        with self._lock:
            return self._jobs.get(name)

    def pod(self, name: str) -> CachedPod | None:
        with self._lock:
            return self._pods.get(name)

    def pods_of(self, job_name: str) -> list[CachedPod]:
        with self._lock:
            pods = [p for p in self._pods.values() if p.job == job_name]
        return sorted(pods, key=_by_creation)

    def pods_by_job(self) -> dict[str, list[CachedPod]]:
        with self._lock:
            grouped: dict[str, list[CachedPod]] = {}
            for pod in self._pods.values():
                grouped.setdefault(pod.job or "", []).append(pod)
        for pods in grouped.values():
            pods.sort(key=_by_creation)
        return grouped


def namespace_of(path: str) -> str:
    parts = path.split("/")
    return parts[parts.index("namespaces") + 1] if "namespaces" in parts else ""


class ResourceWatch(threading.Thread):
    """List then watch one collection forever (until stopped), updating the cache."""

    def __init__(
        self,
        client: KubeClient,
        kind: WatchKind,
        path: str,
        label_selector: str,
        cache: RunCache,
        stop: threading.Event,
        min_watch_timeout: float = MIN_WATCH_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_error: Callable[[str], None] | None = None,
        resync_seconds: float = RESYNC_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ):
        super().__init__(name=f"k8s-watch-{kind}", daemon=True)
        self.resync_seconds = resync_seconds
        self.clock = clock
        self.rand = rand
        self.listed_at = -math.inf  # never: the first round lists
        self.client = client
        self.kind = WatchKind(kind)
        self.path = path
        self.selector = label_selector
        self.cache = cache
        self.stop_event = stop
        self.min_watch_timeout = min_watch_timeout
        self.retry = retry or RetryPolicy(base=0.5, cap=15.0)
        self.on_error = on_error
        self.resource_version: str | None = None
        self.failures = 0
        self.namespace = namespace_of(path)
        self.group = "batch" if path.startswith("/apis/batch/") else ""
        self.verb = "list"
        # Set when the API refuses for good (401, 403): retrying cannot help, the run fails.
        self.fatal: str | None = None

    def relist(self) -> None:
        """Read the whole collection into the cache page by page: a re-list of 10,000 Jobs
        or Pods holds one page of whole objects at a time, and re-projects only those that
        changed. The other watch's re-list waits for this one to end."""
        self.verb = "list"
        listed: set[str] = set()

        def merge(items: list[dict[str, Any]]) -> None:
            listed.update(self.cache.merge_page(self.kind, items))

        with self.cache.relisting:
            resource_version = read_pages(
                self.client, self.path, [("labelSelector", self.selector)], merge
            )
            self.cache.finish_list(self.kind, listed, resource_version)
            give_back_freed_memory()
        # The watch resumes from the version the list was read at.
        self.resource_version = resource_version
        self.listed_at = self.clock()

    def needs_relist(self) -> bool:
        """No version to resume from (first round, 410 Gone, a failure), or resync due."""
        if self.clock() - self.listed_at >= self.resync_seconds:
            self.resource_version = None
        return self.resource_version is None

    def watch_timeout(self) -> int:
        """timeoutSeconds of the next watch: jittered like client-go's reflector
        (min * (1 + rand), in [min, 2 * min)), and ending by the next resync."""
        jittered = int(self.min_watch_timeout * (1.0 + self.rand()))
        until_resync = self.listed_at + self.resync_seconds - self.clock()
        # Rounded up: rounding down left a 1-second watch before each resync.
        return max(1, min(jittered, math.ceil(until_resync)))

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one decoded watch event to the cache; False if the watch must end."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            # 410 Gone (history compacted) and any other watch error: relist.
            self.resource_version = None
            return False
        if kind in ("ADDED", "MODIFIED"):
            self.cache.put(self.kind, obj)
        elif kind == "DELETED":
            self.cache.remove(self.kind, obj)
        # BOOKMARK carries only the version to resume from.
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        self.failures = 0
        return True

    def _watch_once(self) -> None:
        timeout = self.watch_timeout()
        query = [
            ("labelSelector", self.selector),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout),
        ]
        if self.resource_version:
            query.append(("resourceVersion", self.resource_version))
        self.verb = "watch"
        for event in self.client.watch_events(self.path, query, timeout + 30):
            if self.stop_event.is_set() or not self.apply(event):
                return

    def run(self) -> None:
        try:
            while not self.stop_event.is_set() and self.step():
                pass
        except Exception as e:
            # A bug, or an answer no API server gives: without this the thread would end
            # unseen and the status rounds would go on reading a cache nothing feeds.
            self.fatal = f"the watch on {self.kind.value} stopped on an unexpected error: {e!r}"
            self.cache.endings.set()
            raise

    def step(self) -> bool:
        """One round: a list if one is due, then one watch. False once the API refused for
        good (``fatal`` says why); any other failure pauses, and the next round relists."""
        try:
            if self.needs_relist():
                self.relist()
            self._watch_once()
        except ApiError as e:  # an error answer, or a failed, broken or garbled stream
            if is_permanent(e, self.namespace):
                self.fatal = explain(
                    e, Access(self.verb, self.kind.value, self.group), self.namespace
                )
                self.cache.endings.set()  # the next status round reports it at once
                return False
            self.resource_version = None
            self._pause(e.retry_after, f"{e}")
        return True

    def _pause(self, retry_after: float | None, reason: str) -> None:
        self.failures += 1
        if self.on_error is not None and self.failures in (3, 10, 50):
            self.on_error(f"watch on {self.kind} keeps failing ({reason}); retrying")
        self.stop_event.wait(self.retry.delay(retry_after, attempt=min(self.failures - 1, 6)))


class RunWatcher:
    """The two watches of one run and their shared cache."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        label_selector: str,
        on_error: Callable[[str], None] | None = None,
        min_watch_timeout: float = MIN_WATCH_TIMEOUT,
        resync_seconds: float = RESYNC_SECONDS,
    ):
        self.cache = RunCache()
        self.stop_event = threading.Event()
        self.watches = [
            ResourceWatch(
                client,
                kind,
                path,
                label_selector,
                self.cache,
                self.stop_event,
                min_watch_timeout=min_watch_timeout,
                on_error=on_error,
                resync_seconds=resync_seconds,
            )
            for kind, path in (
                (WatchKind.JOBS, f"/apis/batch/v1/namespaces/{namespace}/jobs"),
                (WatchKind.PODS, f"/api/v1/namespaces/{namespace}/pods"),
            )
        ]

    def start(self) -> None:
        for watch in self.watches:
            watch.start()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.cache.synced():
            if time.monotonic() > deadline:
                return False
            self.stop_event.wait(0.05)
        return True

    @property
    def fatal(self) -> str | None:
        """Why a watch gave up for good (a permanent 401/403), if one did."""
        return next((w.fatal for w in self.watches if w.fatal), None)

    def stop(self) -> None:
        self.stop_event.set()
