"""The executor's API client and watches against the local cluster's API server (in process,
no node agent): retries, credentials, watches, relists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.kubeconfig import write_kubeconfig
from localcluster.launcher import RunningCluster
from localcluster.testing import ApiDriver, wait_until
from snakemake_executor_plugin_kubernetes import watcher as watcher_module
from snakemake_executor_plugin_kubernetes.client import ApiError, Backoff, KubeClient
from snakemake_executor_plugin_kubernetes.watcher import RunCache, RunWatcher

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def api(api_server: RunningCluster) -> Iterator[ApiDriver]:
    driver = ApiDriver(api_server)
    yield driver
    driver.close()


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
    api: ApiDriver, kubeconfig: Path | None = None, **backoff: float
) -> tuple[KubeClient, SleepRecorder]:
    sleeper = SleepRecorder()
    client = KubeClient.from_kubeconfig(
        str(kubeconfig or api.cluster.kubeconfig), None, sleep=sleeper, backoff=Backoff(**backoff)
    )
    sleeper.client = client
    api.control.reset_requests()
    return client, sleeper


def statuses(api: ApiDriver, method: str, path: str) -> list[int]:
    return [r["status"] for r in api.requests(method, path)]


def test_retry_after_is_honoured_on_503_and_429(api):
    client, sleeper = make_client(api)
    api.control.inject_fault(503, path="/pods$", method="GET", retry_after=7)
    api.control.inject_fault(429, path="/pods$", method="GET", retry_after=2)
    assert client.request("GET", PODS)["items"] == []
    # a 429 pauses the client as a whole: the wait is what is left of its Retry-After
    assert sleeper.slept == [7.0, pytest.approx(2.0, abs=0.5)]
    assert client.gate.holds == 1
    assert statuses(api, "GET", "/pods") == [503, 429, 200]
    assert not sleeper.lock_held_while_sleeping


def test_backoff_is_exponential_jittered_and_bounded(api):
    client, sleeper = make_client(api, base=1.0, cap=4.0, max_attempts=6)
    api.control.inject_fault(500, path="/pods$", method="GET", count=5)
    client.request("GET", PODS)
    assert len(sleeper.slept) == 5
    for attempt, delay in enumerate(sleeper.slept):
        ceiling = min(4.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_gives_up_after_max_attempts_and_never_retries_client_errors(api):
    client, sleeper = make_client(api, max_attempts=4)
    api.control.inject_fault(502, path="/pods$", method="GET", count=10)
    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS)
    assert excinfo.value.status == 502
    assert statuses(api, "GET", "/pods") == [502] * 4
    assert len(sleeper.slept) == 3

    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS + "/missing")
    assert excinfo.value.status == 404
    assert statuses(api, "GET", "/pods/missing") == [404]


def test_dropped_connections_are_retried(api):
    client, sleeper = make_client(api)
    api.control.inject_fault("drop", path="/secrets$", method="POST", count=2)
    body = {"metadata": {"name": "s"}, "data": {}}
    created = client.request("POST", "/api/v1/namespaces/default/secrets", body=body)
    assert created["metadata"]["name"] == "s"
    assert statuses(api, "POST", "/secrets") == [0, 0, 201]
    assert len(sleeper.slept) == 2


def test_401_reloads_credentials_once(api, tmp_path):
    cluster = api.cluster
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, cluster.url, "token-1", cluster.ca_file)
    api.control.set_token("token-2")
    client, _ = make_client(api, kubeconfig)
    # e.g. an exec plugin or a projected service-account token was refreshed meanwhile
    write_kubeconfig(kubeconfig, cluster.url, "token-2", cluster.ca_file)
    client.request("GET", PODS)
    assert statuses(api, "GET", "/pods") == [401, 200]
    assert client.credential_reloads == 1

    api.control.set_token("token-3")
    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS)
    assert excinfo.value.status == 401
    assert statuses(api, "GET", "/pods") == [401, 200, 401, 401]
    # One reload per refusal: the kubeconfig still holds token-2, refused again, so it gives up.
    assert client.credential_reloads == 2


def _job(name: str, run: str = "r1") -> dict:
    container = {"name": "main", "image": "snakemake/snakemake:v9", "command": ["true"]}
    return {
        "metadata": {"name": name, "labels": {"snakemake.io/run-id": run}},
        "spec": {
            "suspend": True,  # no pods: these tests are about the Jobs' watch
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def open_watches(api: ApiDriver) -> int:
    return api.control.info()["openWatches"]


def test_watch_feeds_cache_and_relists_after_410_and_broken_streams(api):
    client, _ = make_client(api)
    api.create("jobs", _job("before"))
    api.create("jobs", _job("other-run", run="r2"))
    api.control.expire_next_watch()  # the first watch (of jobs or of pods) answers 410
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1", watch_timeout=30)
    watcher.start()
    try:
        assert watcher.wait_synced(10)
        relists = watcher.cache.relists
        wait_until(lambda: sum(relists.values()) == 3, "relist after 410")
        assert watcher.cache.job("before") is not None
        assert watcher.cache.job("other-run") is None

        wait_until(lambda: open_watches(api) == 2, "both watches open")
        api.create("jobs", _job("during"))
        wait_until(lambda: watcher.cache.job("during") is not None, "ADDED seen")

        api.control.close_watches()  # streams end cleanly: resume from the last version
        wait_until(lambda: open_watches(api) == 2, "watches reopened")
        assert sum(relists.values()) == 3
        api.delete("jobs", "before")
        wait_until(lambda: watcher.cache.job("before") is None, "DELETED seen")

        jobs_before = relists["jobs"]
        api.control.inject_fault("drop", path="/jobs$", method="GET")  # the next watch
        api.control.close_watches()
        wait_until(lambda: relists["jobs"] == jobs_before + 1, "relist after broken watch")
    finally:
        watcher.stop()
        api.control.close_watches()
    assert watcher.cache.job("during") is not None


def test_the_run_is_relisted_every_resync_interval(api):
    client, _ = make_client(api)
    api.create("jobs", _job("quiet"))
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1", resync_seconds=1)
    watcher.start()
    try:
        assert watcher.wait_synced(10)
        wait_until(lambda: watcher.cache.relists["jobs"] >= 3, "two periodic relists")
    finally:
        watcher.stop()
        api.control.close_watches()
    lists = [r for r in api.requests("GET", "/jobs") if r["query"].get("watch") != "true"]
    assert len(lists) == watcher.cache.relists["jobs"] <= 12


def test_a_relist_reads_the_run_in_pages(api, monkeypatch):
    monkeypatch.setattr(watcher_module, "LIST_PAGE_SIZE", 2)
    client, _ = make_client(api)
    for index in range(5):
        api.create("jobs", _job(f"job-{index}"))
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1")
    watcher.start()
    try:
        assert watcher.wait_synced(10)
    finally:
        watcher.stop()
        api.control.close_watches()
    assert all(watcher.cache.job(f"job-{index}") is not None for index in range(5))
    job_lists = [r for r in api.requests("GET", "/jobs") if r["query"].get("watch") != "true"]
    assert [r["query"]["limit"] for r in job_lists] == ["2", "2", "2"]
    tokens = [r["query"].get("continue") for r in job_lists]
    assert tokens[0] is None and all(tokens[1:]) and len(set(tokens)) == 3


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
