"""The executor's API client and watches against the local cluster's API server (in process,
no node agent): retries, credentials, watches, relists."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from localcluster.kubeconfig import write_kubeconfig
from localcluster.launcher import RunningCluster
from localcluster.testing import ApiDriver, wait_until
from snakemake_executor_plugin_kubernetes import paging
from snakemake_executor_plugin_kubernetes.apierrors import (
    ApiConnectError,
    ApiError,
    ApiReadError,
    ErrorKind,
    transport_error,
)
from snakemake_executor_plugin_kubernetes.cleanup import delete_run
from snakemake_executor_plugin_kubernetes.client import MERGE_PATCH, KubeClient, job_path
from snakemake_executor_plugin_kubernetes.logs import fetch_log
from snakemake_executor_plugin_kubernetes.retry import RetryPolicy
from snakemake_executor_plugin_kubernetes.watcher import RunCache, RunWatcher, WatchKind
from support.watchcache import install_list

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
    api: ApiDriver, kubeconfig: Path | None = None, **policy: float
) -> tuple[KubeClient, SleepRecorder]:
    sleeper = SleepRecorder()
    client = KubeClient.from_kubeconfig(
        str(kubeconfig or api.cluster.kubeconfig), None, sleep=sleeper, retry=RetryPolicy(**policy)
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


def test_a_cancelled_run_stops_waiting_out_a_long_retry_after(api):
    """A cancel must not sit out an API server's 120 s Retry-After: the wait ends within a
    slice of being asked to give up, one last attempt is made, and its failure is final."""
    client, sleeper = make_client(api)
    give_up = threading.Event()

    def sleep_then_cancel(seconds: float) -> None:
        sleeper(seconds)
        if len(sleeper.slept) == 3:
            give_up.set()  # the user pressed ^C three slices into the wait

    client._sleep = sleep_then_cancel
    api.control.inject_fault(503, path="/pods$", method="GET", retry_after=120, count=2)
    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS, give_up=give_up)
    assert excinfo.value.status == 503
    assert sleeper.slept == [1.0, 1.0, 1.0]  # not 120
    assert statuses(api, "GET", "/pods") == [503, 503]


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


def test_dropped_connections_are_retried_where_a_repeat_is_safe(api):
    client, sleeper = make_client(api)
    secrets = "/api/v1/namespaces/default/secrets"
    api.control.inject_fault("drop", path="/secrets$", method="GET", count=2)
    assert client.request("GET", secrets)["items"] == []
    # A named create: a repeat of an applied one gets 409, so a lost answer is retried.
    api.control.inject_fault("drop", path="/secrets$", method="POST", count=2)
    body = {"metadata": {"name": "s"}, "data": {}}
    created = client.request("POST", secrets, body=body)
    assert created["metadata"]["name"] == "s"
    assert statuses(api, "POST", "/secrets") == [0, 0, 201]
    assert len(sleeper.slept) == 4


def cut_bodies(client: KubeClient, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """The next ``count`` answers arrive with their status, then the connection breaks
    before the body was read (the request itself was served)."""
    send = client._send
    left = [count]

    def cut(*args, **kwargs):
        response = send(*args, **kwargs)
        if left[0] > 0 and 200 <= response.status < 300:
            left[0] -= 1
            response.read = lambda: (_ for _ in ()).throw(ProtocolError("Connection broken"))
        return response

    monkeypatch.setattr(client, "_send", cut)


def test_an_answer_cut_before_its_body_is_retried_as_a_lost_answer(api, monkeypatch):
    """The body is read after the status. A failure there escaped the retry loop: a GET was
    not repeated, and a Job whose 201 lost its body was reported as not created (the job
    failed, and a retry of it ran beside the Job that did exist)."""
    client, sleeper = make_client(api)
    secrets = "/api/v1/namespaces/default/secrets"
    cut_bodies(client, monkeypatch, 1)
    assert client.request("GET", secrets)["items"] == []
    assert statuses(api, "GET", "/secrets") == [200, 200]

    cut_bodies(client, monkeypatch, 1)
    body = {"metadata": {"name": "s"}, "data": {}}
    with pytest.raises(ApiError) as excinfo:  # the caller reads the object (409-then-GET)
        client.request("POST", secrets, body=body)
    assert excinfo.value.status == 409
    assert statuses(api, "POST", "/secrets") == [201, 409]

    # Not repeatable: a read error, as a lost answer is.
    cut_bodies(client, monkeypatch, 1)
    unnamed = {"metadata": {"generateName": "s-"}, "data": {}}
    with pytest.raises(ApiReadError):
        client.request("POST", secrets, body=unnamed)
    assert statuses(api, "POST", "/secrets") == [201, 409, 201]
    assert len(sleeper.slept) == 2

    # A pod's log, read when its job ends: a cut body escaped as urllib3's own error.
    container = {"name": "snakemake", "image": "busybox"}
    api.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [container]}})
    api.write_log("p", "last words\n")
    cut_bodies(client, monkeypatch, 1)
    assert fetch_log(client, "default", "p") == "last words\n"


def test_a_refused_connection_is_a_connect_error_retried_even_for_a_post(api, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", "token", api.cluster.ca_file)
    client, sleeper = make_client(api, kubeconfig, max_attempts=3)
    body = {"metadata": {"generateName": "s-"}, "data": {}}
    with pytest.raises(ApiConnectError) as excinfo:
        client.request("POST", "/api/v1/namespaces/default/secrets", body=body)
    assert excinfo.value.status == 0 and "NewConnectionError" in str(excinfo.value)
    assert len(sleeper.slept) == 2, "never sent, so repeated until the policy ran out"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NewConnectionError(None, "Connection refused"), ErrorKind.CONNECT),
        (ConnectTimeoutError("connect timed out"), ErrorKind.CONNECT),
        (SSLError("certificate verify failed"), ErrorKind.CONNECT),
        (ConnectionRefusedError(111, "refused"), ErrorKind.CONNECT),
        (ProtocolError("Connection aborted.", ConnectionResetError()), ErrorKind.READ),
        (ReadTimeoutError(None, "/", "Read timed out."), ErrorKind.READ),
        (ConnectionResetError(104, "reset"), ErrorKind.READ),
    ],
)
def test_transport_failures_are_told_apart_by_whether_the_request_left(error, kind):
    translated = transport_error(error)
    assert translated.kind is kind and translated.status == 0
    assert translated.reason == type(error).__name__


def test_post_and_patch_are_not_repeated_when_they_may_have_been_applied(api):
    client, sleeper = make_client(api)
    secrets = "/api/v1/namespaces/default/secrets"
    # generateName: every POST creates another object, so a lost answer is final.
    api.control.inject_fault("drop-response", path="/secrets$", method="POST")
    with pytest.raises(ApiReadError):
        client.request("POST", secrets, body={"metadata": {"generateName": "s-"}, "data": {}})
    assert statuses(api, "POST", "/secrets") == [0]
    assert len(api.names("secrets")) == 1, "the lost answer's create was applied"

    client.request("POST", secrets, body={"metadata": {"name": "t"}, "data": {}})
    patch = {"metadata": {"labels": {"seen": "yes"}}}
    api.control.inject_fault("drop-response", path="/secrets/t$", method="PATCH")
    with pytest.raises(ApiReadError):
        client.request("PATCH", secrets + "/t", body=patch, content_type=MERGE_PATCH)
    api.control.inject_fault(500, path="/secrets/t$", method="PATCH")
    with pytest.raises(ApiError) as excinfo:
        client.request("PATCH", secrets + "/t", body=patch, content_type=MERGE_PATCH)
    assert excinfo.value.status == 500
    # Refused before it was handled: a 429, a 503 with Retry-After.
    api.control.inject_fault(429, path="/secrets/t$", method="PATCH", retry_after=0)
    api.control.inject_fault(503, path="/secrets/t$", method="PATCH", retry_after=0)
    client.request("PATCH", secrets + "/t", body=patch, content_type=MERGE_PATCH)
    assert statuses(api, "PATCH", "/secrets/t") == [0, 500, 429, 503, 200]
    assert sleeper.slept == [0.0]  # the 503's; the 429's pause is the gate's, already over


def client_with_stale_token(api: ApiDriver, tmp_path: Path) -> KubeClient:
    """A client made with token-1 while the server takes token-2, which its kubeconfig
    holds by now (e.g. an exec plugin or a projected service-account token refreshed)."""
    cluster = api.cluster
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, cluster.url, "token-1", cluster.ca_file)
    api.control.set_token("token-2")
    client, _ = make_client(api, kubeconfig)
    write_kubeconfig(kubeconfig, cluster.url, "token-2", cluster.ca_file)
    return client


def test_401_reloads_credentials_once(api, tmp_path):
    client = client_with_stale_token(api, tmp_path)
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


def test_threads_refused_together_reload_the_credentials_once(api, tmp_path):
    client = client_with_stale_token(api, tmp_path)
    loads = []
    loader = client._loader
    client._loader = lambda: (loads.append(1), loader())[1]
    api.control.inject_fault("hold", path="/pods$", method="GET", count=6)
    threads = [threading.Thread(target=client.request, args=("GET", PODS)) for _ in range(6)]
    for thread in threads:
        thread.start()
    wait_until(lambda: api.control.held_requests() == 6, "six requests in flight")
    api.control.release_held()  # all six now get their 401 at about the same time
    for thread in threads:
        thread.join(30)
    assert sorted(statuses(api, "GET", "/pods")) == [200] * 6 + [401] * 6
    assert (len(loads), client.credential_reloads) == (1, 1)


def test_a_401_whose_credential_reload_fails_is_still_the_401(api, tmp_path):
    """The reload's own failure (kubeconfig gone or broken, token file unreadable) is no
    ApiError: raised as it was, it ended a watch's thread without a word (the run then
    waited on a cache no longer fed). The 401 stands, with why no fresh credentials came."""
    cluster = api.cluster
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, cluster.url, "token-1", cluster.ca_file)
    client, _ = make_client(api, kubeconfig)
    api.control.set_token("token-2")
    kubeconfig.unlink()
    with pytest.raises(ApiError) as excinfo:
        client.request("GET", PODS)
    assert excinfo.value.status == 401
    assert "reloading the credentials failed" in excinfo.value.message
    assert "Cannot load kubeconfig" in excinfo.value.message
    assert client.credential_reloads == 0

    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1")
    watcher.start()
    for watch in watcher.watches:
        watch.join(timeout=60)  # each ends: with a reason, or (before) with a traceback
    watcher.stop()
    assert [watch.is_alive() for watch in watcher.watches] == [False, False]
    assert all("401" in (watch.fatal or "") for watch in watcher.watches)


def test_a_watch_left_before_its_end_does_not_spoil_the_next_request(api):
    """A watch left before the end of its body (at a 410's ERROR event, or when the run
    stops it) gave its connection back to the pool with the stream still open: the next
    request sent on it waited for the watch's timeoutSeconds, then read the rest of the old
    answer as its own status line (BadStatusLine), a read error. A PATCH the server applied
    was reported failed, and at the run's end its cleanup stalled on such a connection."""
    container = {"name": "c", "image": "busybox"}
    api.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [container]}})
    client, _ = make_client(api, max_attempts=1)
    for _ in range(2):
        query = [("watch", "true"), ("timeoutSeconds", 3)]
        events = client.watch_events(PODS, query, 60)
        assert next(events)["type"] == "ADDED"  # the stream stays open after it
        events.close()  # as ResourceWatch leaves it
        assert [pod["metadata"]["name"] for pod in client.request("GET", PODS)["items"]] == ["p"]


def test_answers_and_watch_events_do_not_intern_their_unique_strings(api):
    """Each Job and Pod brings unique names, uids, versions and times. Interning every short
    string of every answer (as this client once did for the whole-object cache) grew
    Python's interned-string table with them: 3.7 MiB and a third more parsing time at
    10,000 jobs. The cache interns what it keeps and repeats (cachefields)."""
    container = {"name": "c", "image": "busybox"}
    api.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [container]}})
    client, _ = make_client(api)
    listed = client.request("GET", PODS)["items"][0]["metadata"]
    events = client.watch_events(PODS, [("watch", "true"), ("timeoutSeconds", 3)], 60)
    watched = next(events)["object"]["metadata"]
    events.close()
    for meta in (listed, watched):
        fresh_equal_uid = "".join(list(meta["uid"]))
        assert sys.intern(fresh_equal_uid) is not meta["uid"]


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
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1", min_watch_timeout=30)
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

        jobs_before = relists[WatchKind.JOBS]
        api.control.inject_fault("drop", path="/jobs$", method="GET")  # the next watch
        api.control.close_watches()
        wait_until(lambda: relists[WatchKind.JOBS] == jobs_before + 1, "relist after broken watch")
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
        wait_until(lambda: watcher.cache.relists[WatchKind.JOBS] >= 3, "two periodic relists")
    finally:
        watcher.stop()
        api.control.close_watches()
    lists = [r for r in api.requests("GET", "/jobs") if r["query"].get("watch") != "true"]
    assert len(lists) == watcher.cache.relists[WatchKind.JOBS] <= 12


def test_a_relist_reads_the_run_in_pages(api, monkeypatch):
    monkeypatch.setattr(paging, "LIST_PAGE_SIZE", 2)
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


def test_cleanup_reads_only_names_page_by_page_then_deletes_the_run_at_once(api, monkeypatch):
    monkeypatch.setattr(paging, "LIST_PAGE_SIZE", 2)
    client, _ = make_client(api)
    for index in range(5):
        api.create("jobs", _job(f"job-{index}"))
    api.create("jobs", _job("other-run", run="r2"))
    assert delete_run(client, "default", "r1", kinds=("jobs",)) == {"jobs": 5}
    lists = api.requests("GET", "/jobs")
    assert [r["query"]["limit"] for r in lists] == ["2", "2", "2"]
    (deleted,) = api.requests("DELETE", "/jobs")
    assert deleted["query"]["labelSelector"] == "snakemake.io/run-id=r1"
    # the connection the deleted Jobs were sent back on (and not read) serves the next request
    left = client.request("GET", job_path("default"))["items"]
    assert [job["metadata"]["name"] for job in left] == ["other-run"]


def test_cleanup_lists_again_when_the_continue_token_expires_between_pages(api, monkeypatch):
    monkeypatch.setattr(paging, "LIST_PAGE_SIZE", 2)
    client, _ = make_client(api)
    for index in range(3):
        api.create("jobs", _job(f"job-{index}"))
    send = client.request
    compacted = []

    def compact_after_the_first_page(method, path, **kw):
        answer = send(method, path, **kw)
        if method == "GET" and not compacted:
            api.create("jobs", _job("newer"))  # history moves on, then is compacted
            compacted.append(api.control.compact())
        return answer

    monkeypatch.setattr(client, "request", compact_after_the_first_page)
    assert delete_run(client, "default", "r1", kinds=("jobs",)) == {"jobs": 4}
    assert [r["status"] for r in api.requests("GET", "/jobs")] == [200, 410, 200, 200]
    assert client.request("GET", job_path("default"))["items"] == []


def test_a_relist_keeps_objects_newer_than_the_list():
    cache = RunCache()
    cache.put(WatchKind.JOBS, {"metadata": {"name": "old", "resourceVersion": "5"}})
    cache.put(WatchKind.JOBS, {"metadata": {"name": "just-created", "resourceVersion": "12"}})
    install_list(
        cache, WatchKind.JOBS, [{"metadata": {"name": "listed", "resourceVersion": "9"}}], "10"
    )
    assert cache.job("old") is None
    assert cache.job("listed") is not None
    assert cache.job("just-created") is not None


def test_the_cache_flags_changes_that_may_end_a_job():
    def version(name: str, status: dict, owner: str = "j") -> dict:
        meta = {"name": name, "ownerReferences": [{"kind": "Job", "name": owner}]}
        return {"metadata": meta, "status": status}

    quiet = [
        (WatchKind.JOBS, version("j", {"active": 1})),
        (WatchKind.JOBS, version("j", {"conditions": [{"type": "Complete", "status": "False"}]})),
        (WatchKind.PODS, version("p", {"phase": "Pending"})),
        (WatchKind.PODS, version("p", {"phase": "Running"})),
    ]
    endings = [
        (WatchKind.JOBS, version("j", {"conditions": [{"type": "Complete", "status": "True"}]})),
        (
            WatchKind.JOBS,
            version("j", {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}),
        ),
        (
            WatchKind.JOBS,
            version("j", {"conditions": [{"type": "FailureTarget", "status": "True"}]}),
        ),
        (WatchKind.JOBS, version("j", {"conditions": [{"type": "Failed", "status": "True"}]})),
        (WatchKind.PODS, version("p", {"phase": "Failed"})),
        (WatchKind.PODS, version("p", {"phase": "Succeeded"})),
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
    cache.remove(WatchKind.PODS, version("p", {"phase": "Running"}))
    assert cache.endings.is_set() and cache.gone_pods("j")
    cache.endings.clear()
    cache.remove(WatchKind.PODS, version("q", {"phase": "Succeeded"}))
    assert not cache.endings.is_set(), "a finished pod's deletion changes no verdict"
    cache.remove(WatchKind.JOBS, version("j", {}))
    assert cache.endings.is_set()

    # A relist that brings an ending the watch missed flags it; one already known does not.
    done = version("k", {"conditions": [{"type": "Complete", "status": "True"}]})
    cache.endings.clear()
    install_list(cache, WatchKind.JOBS, [done])
    assert cache.endings.is_set()
    cache.endings.clear()
    install_list(cache, WatchKind.JOBS, [done])
    assert not cache.endings.is_set()


# ----- the retry policy on its own: which failures are repeated, and for how long -----------

STATUS_503_RETRY_AFTER = ApiError(503, "Service Unavailable", retry_after=1.0)
FAILURES = {
    "connect": ApiConnectError("NewConnectionError"),
    "read": ApiReadError("ProtocolError"),
    "429": ApiError(429, "Too Many Requests", retry_after=1.0),
    "503+Retry-After": STATUS_503_RETRY_AFTER,
    "503": ApiError(503, "Service Unavailable"),
    "500": ApiError(500, "Internal Server Error"),
    "502": ApiError(502, "Bad Gateway"),
    "504": ApiError(504, "Gateway Timeout"),
    "408": ApiError(408, "Request Timeout"),
    "400": ApiError(400, "Bad Request"),
    "404": ApiError(404, "Not Found"),
    "409": ApiError(409, "Conflict"),
    "422": ApiError(422, "Unprocessable Entity"),
}
ALWAYS = {"connect", "429", "503+Retry-After"}
WHEN_REPEATABLE = ALWAYS | {"read", "503", "500", "502", "504", "408"}
NAMED = {"metadata": {"name": "job-1"}}
REQUESTS = [  # method, path, body, failures retried
    ("GET", "/api/v1/namespaces/ns/pods", None, WHEN_REPEATABLE),
    ("GET", "/api/v1/namespaces/ns/pods?watch=true", None, WHEN_REPEATABLE),
    ("DELETE", "/apis/batch/v1/namespaces/ns/jobs/job-1", None, WHEN_REPEATABLE),
    ("PUT", "/api/v1/namespaces/ns/secrets/s", NAMED, WHEN_REPEATABLE),
    ("POST", "/apis/batch/v1/namespaces/ns/jobs", NAMED, WHEN_REPEATABLE),  # 409 on a repeat
    ("POST", "/apis/batch/v1/namespaces/ns/jobs", {"metadata": {"generateName": "j-"}}, ALWAYS),
    ("POST", "/api/v1/namespaces/ns/pods/job-1/eviction", NAMED, ALWAYS),  # a subresource
    ("POST", "/api/v1/namespaces/ns/secrets", None, ALWAYS),
    ("PATCH", "/api/v1/namespaces/ns/secrets/s", {"metadata": {"labels": {}}}, ALWAYS),
]


@pytest.mark.parametrize(("method", "path", "body", "retried"), REQUESTS)
@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_which_failures_each_request_retries(method, path, body, retried, failure):
    policy = RetryPolicy()
    error = FAILURES[failure]
    repeatable = policy.repeatable(method, path, body)
    if failure in retried:
        assert policy.increment(error, repeatable).attempts == 1
    else:
        with pytest.raises(ApiError) as excinfo:
            policy.increment(error, repeatable)
        assert excinfo.value is error


def test_the_policy_is_exhausted_after_n_attempts_or_its_time_budget():
    error = ApiError(500, "Internal Server Error")
    policy = RetryPolicy(max_attempts=3)
    policy = policy.increment(error, True).increment(error, True)
    with pytest.raises(ApiError):
        policy.increment(error, True)  # the third failure of three attempts is final

    policy = RetryPolicy(budget_seconds=10).increment(error, True).after_waiting(9.5)
    assert policy.increment(error, True).attempts == 2
    with pytest.raises(ApiError):
        policy.after_waiting(0.5).increment(error, True)
    assert RetryPolicy().after_waiting(0) == RetryPolicy(), "an empty wait changes nothing"


def test_backoff_doubles_up_to_its_cap_jittered_down_to_half_and_follows_retry_after():
    low, high = (
        RetryPolicy(base=1, cap=8, random=lambda: 0.0),
        RetryPolicy(base=1, cap=8, random=lambda: 1.0),
    )
    assert [low.delay(None, attempt=n) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert [high.delay(None, attempt=n) for n in range(6)] == [1, 2, 4, 8, 8, 8]
    error = ApiError(500, "x")
    assert high.increment(error, True).increment(error, True).delay(None) == 2, "the 2nd failed"
    assert high.delay(7.0) == 7.0 and RetryPolicy(max_retry_after=60).delay(600.0) == 60.0


class _Raw:
    """A streamed body: chunks, then optionally a transport failure."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error, self.released = list(chunks), error, False
        self.closed = False

    def read1(self, size: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        return b""

    def release_conn(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("chunks", "error", "reason"),
    [
        (
            [b'{"type":"ADDED","object":{}}\n{"ty'],
            ProtocolError("Connection broken"),
            "ProtocolError",
        ),
        (
            [b'{"type":"ADDED","object":{}}\n'],
            ReadTimeoutError(None, "/", "Read timed out."),
            "ReadTimeoutError",
        ),
        ([b'{"type":"ADDED","object":{}}\n{"type": garbled\n'], None, "InvalidWatchEvent"),
    ],
)
def test_a_watch_stream_failing_midway_is_an_api_read_error(
    api, monkeypatch, chunks, error, reason
):
    raw = _Raw(chunks, error)
    client, _ = make_client(api)
    # The watch's answer is a recorded stream that then fails.
    monkeypatch.setattr(client, "raw", lambda *a, **k: SimpleNamespace(response=raw))
    events = client.watch_events(PODS, [], 1.0)
    assert next(events) == {"type": "ADDED", "object": {}}
    with pytest.raises(ApiReadError) as excinfo:
        next(events)
    assert excinfo.value.reason == reason and excinfo.value.status == 0
    assert raw.released and raw.closed  # a connection left mid-stream is not reused
