"""The watch cache replayed: recorded list answers and watch streams (ADDED, MODIFIED,
DELETED, BOOKMARK, ERROR 410 Gone, broken streams) fed to a ResourceWatch one round at a
time, with an injected clock and random source instead of wall time. No API server."""

from __future__ import annotations

import gc
import json
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from snakemake_executor_plugin_kubernetes import paging
from snakemake_executor_plugin_kubernetes.apierrors import ApiError, ApiReadError
from snakemake_executor_plugin_kubernetes.retry import RetryPolicy
from snakemake_executor_plugin_kubernetes.watcher import (
    MIN_WATCH_TIMEOUT,
    ResourceWatch,
    RunCache,
    WatchKind,
)
from support.watchcache import install_list

NAMESPACE = "ns"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
SELECTOR = "snakemake.io/run-id=r1"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pod(name: str, rv: int, phase: str, job: str = "job-a") -> dict[str, Any]:
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job, "controller": True}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "resourceVersion": str(rv),
            "labels": {"snakemake.io/run-id": "r1", "job-name": job},
            "ownerReferences": [owner],
            "creationTimestamp": f"2026-11-28T07:00:{rv % 60:02d}Z",
        },
        "status": {"phase": phase},
    }


def job(name: str, rv: int, *conditions: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(rv)},
        "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]},
    }


def line(kind: str, obj: dict[str, Any]) -> bytes:
    """One event as the API server writes it on a watch stream."""
    return json.dumps({"type": kind, "object": obj}).encode()


def bookmark(rv: int, api_version: str = "v1", kind: str = "Pod") -> bytes:
    meta = {"resourceVersion": str(rv), "annotations": {"k8s.io/initial-events-end": "true"}}
    return line("BOOKMARK", {"apiVersion": api_version, "kind": kind, "metadata": meta})


GONE = line(
    "ERROR",
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "too old resource version: 5 (40)",
        "reason": "Expired",
        "code": 410,
    },
)


def page(items: list[dict[str, Any]], rv: int, token: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    if token:
        metadata["continue"] = token
    return {"kind": "List", "metadata": metadata, "items": items}


Answer = dict[str, Any] | ApiError
Stream = list[bytes | ApiError]


class RecordedApi:
    """Answers a ResourceWatch's lists and watches from recorded answers, in order, and
    remembers each request's query."""

    def __init__(self, lists: list[Answer], watches: list[Stream]) -> None:
        self.lists = list(lists)
        self.watches = list(watches)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def request(self, method: str, path: str, query: Any = None, **kw: Any) -> dict[str, Any]:
        assert method == "GET"
        self.calls.append(("list", dict(query or [])))
        answer = self.lists.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return json.loads(json.dumps(answer))

    def watch_events(self, path: str, query: Any, read_timeout: float) -> Iterator[dict]:
        self.calls.append(("watch", dict(query)))
        for item in self.watches.pop(0):
            if isinstance(item, ApiError):
                raise item
            yield json.loads(item)

    def queries(self, verb: str) -> list[dict[str, Any]]:
        return [query for call, query in self.calls if call == verb]


def make_watch(
    api: RecordedApi, kind: WatchKind = WatchKind.PODS, clock: Clock | None = None, **kw: Any
) -> ResourceWatch:
    return ResourceWatch(
        api,  # type: ignore[arg-type]  # answers like a KubeClient
        kind,
        PODS if kind is WatchKind.PODS else JOBS,
        SELECTOR,
        RunCache(),
        threading.Event(),
        retry=RetryPolicy(base=0.0),  # pauses between failed rounds take no time
        clock=clock or Clock(),
        rand=lambda: 0.5,
        **kw,
    )


def test_a_pods_life_is_replayed_into_the_cache():
    api = RecordedApi(
        [page([], 10)],
        [
            [
                line("ADDED", pod("p1", 11, "Pending")),
                line("MODIFIED", pod("p1", 12, "Running")),
                bookmark(15),
                line("MODIFIED", pod("p1", 16, "Succeeded")),
                line("DELETED", pod("p1", 17, "Succeeded")),
            ],
            [line("ADDED", pod("p2", 18, "Pending"))],
        ],
    )
    watch = make_watch(api)
    cache = watch.cache
    assert watch.step() and watch.step()  # two rounds, as run() makes them
    assert api.queries("list") == [{"labelSelector": SELECTOR, "limit": paging.LIST_PAGE_SIZE}]
    first, second = api.queries("watch")
    assert first["resourceVersion"] == "10", "the watch starts where the list was read"
    assert second["resourceVersion"] == "17", "resumed after the last event, not relisted"
    assert first["allowWatchBookmarks"] == "true" and first["watch"] == "true"
    assert cache.pod("p1") is None, "a finished pod deleted is gone from the cache"
    assert cache.gone_pods("job-a") == [], "a finished pod's deletion is no disruption"
    assert cache.pod("p2")["status"]["phase"] == "Pending"
    assert cache.endings.is_set(), "the pod's end phase flagged an ending"
    assert cache.relists == {WatchKind.JOBS: 0, WatchKind.PODS: 1}


@pytest.mark.parametrize(
    ("events", "ending", "phase_at_end"),
    [
        ([("ADDED", "Pending"), ("MODIFIED", "Running")], False, "Running"),
        ([("ADDED", "Running"), ("MODIFIED", "Failed")], True, "Failed"),
        ([("ADDED", "Running"), ("MODIFIED", "Succeeded")], True, "Succeeded"),
    ],
)
def test_each_event_updates_the_cache_and_flags_endings(events, ending, phase_at_end):
    watch = make_watch(RecordedApi([], []))
    for rv, (kind, phase) in enumerate(events, start=20):
        assert watch.apply(json.loads(line(kind, pod("p", rv, phase))))
        assert watch.resource_version == str(rv)
    assert watch.cache.pod("p")["status"]["phase"] == phase_at_end
    assert watch.cache.endings.is_set() is ending


def test_a_running_pod_deleted_is_remembered_for_its_job():
    watch = make_watch(RecordedApi([], []))
    watch.apply(json.loads(line("ADDED", pod("p", 5, "Running"))))
    assert not watch.cache.endings.is_set()
    watch.apply(json.loads(line("DELETED", pod("p", 6, "Running"))))
    assert watch.cache.pod("p") is None
    assert [p["metadata"]["name"] for p in watch.cache.gone_pods("job-a")] == ["p"]
    assert watch.cache.endings.is_set(), "evicted or lost with its node: the Job must judge"


def test_a_bookmark_moves_the_resume_point_and_changes_nothing_else():
    watch = make_watch(RecordedApi([], []))
    watch.apply(json.loads(line("ADDED", pod("p", 5, "Running"))))
    before = watch.cache.pod("p")
    assert watch.apply(json.loads(bookmark(90)))
    assert watch.resource_version == "90"
    assert watch.cache.pod("p") is before and watch.cache.pods_by_job() == {"job-a": [before]}


def test_410_gone_ends_the_watch_and_the_next_round_relists_and_resumes_from_the_list():
    api = RecordedApi(
        [page([job("a", 3)], 4), page([job("a", 30, "Complete"), job("b", 35)], 40)],
        [
            [line("ADDED", job("b", 5)), GONE, line("ADDED", job("never-read", 6))],
            [line("MODIFIED", job("b", 41, "Failed"))],
        ],
    )
    watch = make_watch(api, WatchKind.JOBS)
    assert watch.step()
    assert watch.resource_version is None, "410: no version to resume from"
    assert watch.cache.job("b") is not None and watch.cache.job("never-read") is None
    watch.cache.endings.clear()
    assert watch.step()
    assert watch.cache.relists[WatchKind.JOBS] == 2
    assert watch.cache.endings.is_set(), "the relist brought an ending the watch missed"
    assert api.queries("watch")[1]["resourceVersion"] == "40"
    assert watch.cache.job("b")["status"]["conditions"][0]["type"] == "Failed"
    assert watch.failures == 0, "a 410 is the protocol, not a failure"


def test_a_stream_that_breaks_or_a_failing_list_pauses_then_relists():
    broken = ApiReadError("ProtocolError", "Connection broken: IncompleteRead")
    api = RecordedApi(
        [
            page([], 10),
            ApiError(500, "Internal Server Error"),
            page([pod("p1", 12, "Running")], 13),
        ],
        [[line("ADDED", pod("p1", 11, "Pending")), broken], [bookmark(20)]],
    )
    errors: list[str] = []
    watch = make_watch(api, on_error=errors.append)
    assert watch.step()  # list, then a watch that breaks after one event
    assert watch.cache.pod("p1")["status"]["phase"] == "Pending", "events before the break stay"
    assert watch.resource_version is None and watch.failures == 1
    assert watch.step()  # the list fails
    assert watch.failures == 2 and watch.cache.relists[WatchKind.PODS] == 1
    assert watch.step()  # the list works, the watch resumes from it
    assert watch.cache.pod("p1")["status"]["phase"] == "Running"
    assert watch.failures == 0 and watch.resource_version == "20"
    assert [q.get("resourceVersion") for q in api.queries("watch")] == ["10", "13"]
    assert errors == [], "two failures are not yet worth a warning"


def test_a_permanent_refusal_ends_the_watch_with_the_reason():
    forbidden = ApiError(403, "Forbidden", 'pods is forbidden: User "u" cannot watch')
    api = RecordedApi([page([], 10)], [[forbidden]])
    watch = make_watch(api)
    assert watch.step() is False
    assert "watch" in watch.fatal and "pods" in watch.fatal
    assert watch.cache.endings.is_set()


def test_resync_and_watch_timeouts_follow_the_injected_clock():
    clock = Clock(1000.0)
    api = RecordedApi([page([], 10), page([], 50)], [[bookmark(11)], [bookmark(12)], []])
    watch = make_watch(api, clock=clock, resync_seconds=600)
    assert watch.step()
    # rand() is 0.5: min * (1 + 0.5)
    assert api.queries("watch")[0]["timeoutSeconds"] == int(MIN_WATCH_TIMEOUT * 1.5)
    clock.now += 590  # 10 s before the resync: the watch ends by then
    assert watch.step()
    assert api.queries("watch")[1]["timeoutSeconds"] == 10
    assert watch.cache.relists[WatchKind.PODS] == 1
    clock.now += 10  # resync due: list again, whatever the watch's resume point
    assert watch.step()
    assert watch.cache.relists[WatchKind.PODS] == 2
    assert api.queries("watch")[2]["resourceVersion"] == "50"


@pytest.mark.parametrize(("rand", "timeout"), [(0.0, 300), (0.5, 450), (0.999, 599)])
def test_the_watch_timeout_is_jittered_like_client_gos_reflector(rand, timeout):
    watch = make_watch(RecordedApi([], []))
    watch.rand = lambda: rand
    watch.listed_at = watch.clock()  # just listed: the resync is far
    assert watch.watch_timeout() == timeout
    assert MIN_WATCH_TIMEOUT <= watch.watch_timeout() < 2 * MIN_WATCH_TIMEOUT


def test_an_unexpected_error_stops_the_watch_loudly_not_silently():
    not_an_event = b'["ADDED", "p1"]'  # valid JSON, but no watch event
    api = RecordedApi([page([], 10)], [[not_an_event]])
    watch = make_watch(api)
    with pytest.raises(AttributeError):  # what a list has in place of event.get
        watch.run()
    assert watch.fatal is not None and "stopped on an unexpected error" in watch.fatal
    assert watch.cache.endings.is_set(), "the next status round reports it at once"


class WholeObject(dict):
    """A decoded object from a list page, whose lifetime the test can follow."""


def test_a_relist_holds_one_page_of_whole_objects_at_a_time():
    """A resync of 10,000 pods must not keep every decoded pod until the last page came:
    each page is projected into the cache before the next one is asked for."""
    pages = [
        page([pod(f"p{n}-{i}", 10, "Pending") for i in range(3)], 10, f"t{n}" if n < 3 else None)
        for n in range(4)
    ]
    whole: list[weakref.ref] = []
    alive_at_each_request: list[int] = []

    class PagedApi(RecordedApi):
        def request(self, method: str, path: str, query: Any = None, **kw: Any):
            gc.collect()
            alive_at_each_request.append(sum(ref() is not None for ref in whole))
            answer = super().request(method, path, query, **kw)
            answer["items"] = [WholeObject(item) for item in answer["items"]]
            whole.extend(weakref.ref(item) for item in answer["items"])
            return answer

    watch = make_watch(PagedApi(pages, [[]]))
    watch.step()
    assert alive_at_each_request == [0, 0, 0, 0]
    assert [q.get("continue") for q in watch.client.queries("list")] == [None, "t0", "t1", "t2"]
    assert len(watch.cache.pods_by_job()["job-a"]) == 12
    assert watch.resource_version == "10"


def test_the_jobs_and_the_pods_watch_re_list_one_at_a_time():
    """Two threads decoding pages at once left the process 11.6 MiB larger after a re-list
    of 10,000 Jobs and 10,000 Pods, one after the other 3.0 MiB (pages of 500)."""
    cache = RunCache()
    inside: list[WatchKind] = []
    most_at_once: list[int] = []
    pods_listing, release = threading.Event(), threading.Event()

    class CountingApi(RecordedApi):
        def __init__(self, kind: WatchKind, lists: list[Answer]) -> None:
            super().__init__(lists, [])
            self.kind = kind

        def request(self, method: str, path: str, query: Any = None, **kw: Any):
            inside.append(self.kind)
            most_at_once.append(len(inside))
            try:
                if self.kind is WatchKind.PODS:
                    pods_listing.set()
                    release.wait(10)
                return super().request(method, path, query, **kw)
            finally:
                inside.remove(self.kind)

    def watch_of(kind: WatchKind, items: list[dict[str, Any]]) -> ResourceWatch:
        api = CountingApi(kind, [page(items, 10)])
        path = PODS if kind is WatchKind.PODS else JOBS
        return ResourceWatch(api, kind, path, SELECTOR, cache, threading.Event())  # type: ignore[arg-type]

    pods = watch_of(WatchKind.PODS, [pod("p", 10, "Pending")])
    jobs = watch_of(WatchKind.JOBS, [job("job-a", 9)])
    pods_thread = threading.Thread(target=pods.relist)
    pods_thread.start()
    assert pods_listing.wait(10)
    jobs_thread = threading.Thread(target=jobs.relist)
    jobs_thread.start()
    jobs_thread.join(0.3)
    assert jobs_thread.is_alive() and jobs.client.calls == []  # waits for the pods' list
    release.set()
    pods_thread.join(10)
    jobs_thread.join(10)
    assert max(most_at_once) == 1 and cache.job("job-a") is not None and cache.pod("p")
    assert cache.synced()


def test_a_relist_keeps_unchanged_objects_and_replaces_changed_and_removed_ones():
    cache = RunCache()
    install_list(
        cache,
        WatchKind.PODS,
        [pod("same", 5, "Pending"), pod("moved-on", 6, "Pending"), pod("gone", 7, "Pending")],
        "7",
    )
    cache.put(WatchKind.PODS, pod("created-after-list", 12, "Pending"))
    kept = cache.pod("same")
    cache.endings.clear()

    install_list(
        cache, WatchKind.PODS, [pod("same", 5, "Pending"), pod("moved-on", 9, "Failed")], "10"
    )

    assert cache.pod("same") is kept, "an unchanged object is not projected again"
    assert cache.pod("moved-on")["status"]["phase"] == "Failed"
    assert cache.endings.is_set(), "the ending the list brought is flagged"
    assert cache.pod("gone") is None
    assert cache.pod("created-after-list") is not None, "newer than the list: the watch decides"
    assert cache.relists[WatchKind.PODS] == 2
