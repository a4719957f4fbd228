"""The executor's API client and watches against a scripted API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from snakemake_executor_plugin_kubernetes import watcher as watcher_module
from snakemake_executor_plugin_kubernetes.client import ApiError, Backoff, KubeClient
from snakemake_executor_plugin_kubernetes.watcher import RunCache, RunWatcher
from support.fakeapi import FakeApiServer, wait_until

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.stop()


class SleepRecorder:
    def __init__(self) -> None:
        self.slept: list[float] = []
        self.client: KubeClient | None = None
        self.lock_held_while_sleeping = False

    def __call__(self, seconds: float) -> None:
        if self.client is not None and self.client._swap_lock.locked():
            self.lock_held_while_sleeping = True
        self.slept.append(seconds)


def make_client(
    server: FakeApiServer, tmp_path: Path, **backoff: float
) -> tuple[KubeClient, SleepRecorder]:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    sleeper = SleepRecorder()
    client = KubeClient.from_kubeconfig(
        str(kubeconfig), None, sleep=sleeper, backoff=Backoff(**backoff)
    )
    sleeper.client = client
    return client, sleeper


def test_retry_after_is_honoured_on_503_and_429(server, tmp_path):
    client, sleeper = make_client(server, tmp_path)
    server.api.fail_next("GET", "/pods$", 503, count=1, **{"Retry-After": "7"})
    server.api.fail_next("GET", "/pods$", 429, count=1, **{"Retry-After": "2"})
    assert client.request("GET", PODS) == {"items": [], "metadata": {"resourceVersion": "100"}}
    # a 429 pauses the client as a whole: the wait is what is left of its Retry-After
    assert sleeper.slept == [7.0, pytest.approx(2.0, abs=0.5)]
    assert client.gate.holds == 1
    assert server.api.count("GET", "/pods$") == 3
    assert not sleeper.lock_held_while_sleeping


def test_backoff_is_exponential_jittered_and_bounded(server, tmp_path):
    client, sleeper = make_client(server, tmp_path, base=1.0, cap=4.0, max_attempts=6)
    server.api.fail_next("GET", "/pods$", 500, count=5)
    client.request("GET", PODS)
    assert len(sleeper.slept) == 5
    for attempt, delay in enumerate(sleeper.slept):
        ceiling = min(4.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_gives_up_after_max_attempts_and_never_retries_client_errors(server, tmp_path):
    client, sleeper = make_client(server, tmp_path, max_attempts=4)
    server.api.fail_next("GET", "/pods$", 502, count=10)
    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS)
    assert excinfo.value.status == 502
    assert server.api.count("GET", "/pods$") == 4
    assert len(sleeper.slept) == 3

    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS + "/missing")
    assert excinfo.value.status == 404
    assert server.api.count("GET", "/pods/missing$") == 1


def test_dropped_connections_are_retried(server, tmp_path):
    client, sleeper = make_client(server, tmp_path)
    server.api.fail_next("POST", "/secrets$", 0, count=2)
    body = {"metadata": {"name": "s"}, "data": {}}
    created = client.request("POST", "/api/v1/namespaces/default/secrets", body=body)
    assert created["metadata"]["name"] == "s"
    assert server.api.count("POST", "/secrets$") == 3
    assert len(sleeper.slept) == 2


def test_401_reloads_credentials_once(server, tmp_path):
    server.api.accepted_tokens = {"token-2"}
    client, _ = make_client(server, tmp_path)  # kubeconfig holds token-1
    # e.g. an exec plugin or a projected service-account token was refreshed meanwhile
    server.write_kubeconfig(tmp_path / "kubeconfig", token="token-2")
    client.request("GET", PODS)
    assert [r.token for r in server.api.requests] == ["token-1", "token-2"]
    assert client.credential_reloads == 1

    server.api.accepted_tokens = {"token-3"}
    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS)
    assert excinfo.value.status == 401
    assert [r.token for r in server.api.requests[2:]] == ["token-2", "token-2"]


def _job(name: str, run: str = "r1") -> dict:
    return {"metadata": {"name": name, "labels": {"snakemake.io/run-id": run}}, "spec": {}}


def test_watch_feeds_cache_and_relists_after_410_and_broken_streams(server, tmp_path):
    client, _ = make_client(server, tmp_path)
    api = server.api
    api.put("jobs", _job("before"))
    api.put("jobs", _job("other-run", run="r2"))
    api.gone_next_watch = 1  # the first watch (of jobs or of pods) answers 410 Gone
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1", watch_timeout=30)
    watcher.start()
    try:
        assert watcher.wait_synced(10)
        relists = watcher.cache.relists
        wait_until(lambda: sum(relists.values()) == 3, "relist after 410")
        assert watcher.cache.job("before") is not None
        assert watcher.cache.job("other-run") is None

        wait_until(lambda: len(api.watchers) == 2, "both watches open")
        api.put("jobs", _job("during"), event="ADDED")
        wait_until(lambda: watcher.cache.job("during") is not None, "ADDED seen")

        api.end_watches()  # streams end cleanly: resume from the last resourceVersion
        wait_until(lambda: len(api.watchers) == 2, "watches reopened")
        assert sum(relists.values()) == 3
        api.remove("jobs", "before")
        wait_until(lambda: watcher.cache.job("before") is None, "DELETED seen")

        jobs_before = relists["jobs"]
        api.fail_next("GET", "/jobs$", 0, count=1)  # the next watch request is dropped
        api.end_watches()
        wait_until(lambda: relists["jobs"] == jobs_before + 1, "relist after broken watch")
    finally:
        watcher.stop()
        api.end_watches()
    assert watcher.cache.job("during") is not None


def test_periodic_relist_catches_changes_a_watch_never_delivered(server, tmp_path):
    client, _ = make_client(server, tmp_path)
    api = server.api
    api.put("jobs", _job("quiet"))
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1", resync_seconds=1)
    watcher.start()
    try:
        assert watcher.wait_synced(10)
        with api.lock:  # a server-side change without a watch event
            api.objects[("jobs", "quiet")]["status"] = {"succeeded": 1}
        wait_until(
            lambda: (watcher.cache.job("quiet") or {}).get("status") == {"succeeded": 1},
            "relist picked up the silent change",
        )
    finally:
        watcher.stop()
        api.end_watches()
    assert 2 <= watcher.cache.relists["jobs"] <= 12


def test_a_relist_reads_the_run_in_pages(server, tmp_path, monkeypatch):
    monkeypatch.setattr(watcher_module, "LIST_PAGE_SIZE", 2)
    client, _ = make_client(server, tmp_path)
    api = server.api
    for index in range(5):
        api.put("jobs", _job(f"job-{index}"))
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1")
    watcher.start()
    try:
        assert watcher.wait_synced(10)
    finally:
        watcher.stop()
        api.end_watches()
    assert all(watcher.cache.job(f"job-{index}") is not None for index in range(5))
    job_lists = [
        r for r in api.requests
        if r.method == "GET" and r.path.endswith("/jobs") and r.query.get("watch") != "true"
    ]  # fmt: skip
    assert [(r.query["limit"], r.query.get("continue")) for r in job_lists] == [
        ("2", None),
        ("2", "2"),
        ("2", "4"),
    ]


def test_a_relist_keeps_objects_newer_than_the_list():
    cache = RunCache()
    cache.put("jobs", {"metadata": {"name": "old", "resourceVersion": "5"}})
    cache.put("jobs", {"metadata": {"name": "just-created", "resourceVersion": "12"}})
    cache.replace("jobs", [{"metadata": {"name": "listed", "resourceVersion": "9"}}], "10")
    assert cache.job("old") is None
    assert cache.job("listed") is not None
    assert cache.job("just-created") is not None


def test_the_cache_flags_changes_that_may_end_a_job():
    def version(name: str, status: dict, owner: str = "j") -> dict:
        meta = {"name": name, "ownerReferences": [{"kind": "Job", "name": owner}]}
        return {"metadata": meta, "status": status}

    quiet = [
        ("jobs", version("j", {"active": 1})),
        ("jobs", version("j", {"conditions": [{"type": "Complete", "status": "False"}]})),
        ("pods", version("p", {"phase": "Pending"})),
        ("pods", version("p", {"phase": "Running"})),
    ]
    endings = [
        ("jobs", version("j", {"conditions": [{"type": "Complete", "status": "True"}]})),
        ("jobs", version("j", {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]})),
        ("jobs", version("j", {"conditions": [{"type": "FailureTarget", "status": "True"}]})),
        ("jobs", version("j", {"conditions": [{"type": "Failed", "status": "True"}]})),
        ("pods", version("p", {"phase": "Failed"})),
        ("pods", version("p", {"phase": "Succeeded"})),
    ]
    cache = RunCache()
    for kind, obj in quiet:
        cache.put(kind, obj)
        assert not cache.endings.is_set(), (kind, obj)
    for kind, obj in endings:
        cache.endings.clear()
        cache.put(kind, obj)
        assert cache.endings.is_set(), (kind, obj)

    # Deletions: a running pod lost (its Job must account for it) and a Job removed.
    cache.endings.clear()
    cache.remove("pods", version("p", {"phase": "Running"}))
    assert cache.endings.is_set() and cache.gone_pods("j")
    cache.endings.clear()
    cache.remove("pods", version("q", {"phase": "Succeeded"}))
    assert not cache.endings.is_set(), "a finished pod's deletion changes no verdict"
    cache.remove("jobs", version("j", {}))
    assert cache.endings.is_set()

    # A relist that brings an ending the watch missed flags it; one already known does not.
    done = version("k", {"conditions": [{"type": "Complete", "status": "True"}]})
    cache.endings.clear()
    cache.replace("jobs", [done])
    assert cache.endings.is_set()
    cache.endings.clear()
    cache.replace("jobs", [done])
    assert not cache.endings.is_set()
