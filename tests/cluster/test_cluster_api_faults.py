"""Fault injection and the request log as the kubernetes client sees them."""

from __future__ import annotations

import json
import threading

import pytest
import urllib3
from kubernetes import client, watch

from localcluster.control import ControlError
from localcluster.observer import OBSERVER_USER_AGENT, ClusterObserver
from localcluster.testing import pod_manifest, wait_until


def test_request_log_records_and_counts(core: client.CoreV1Api, namespace: str, control) -> None:
    control.reset_requests()
    core.list_namespaced_pod(namespace, label_selector="a=b")
    core.list_namespaced_pod(namespace)
    with pytest.raises(client.ApiException):
        core.read_namespaced_pod("missing", namespace)
    records = control.requests()
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("GET", f"/api/v1/namespaces/{namespace}/pods", 200),
        ("GET", f"/api/v1/namespaces/{namespace}/pods", 200),
        ("GET", f"/api/v1/namespaces/{namespace}/pods/missing", 404),
    ]
    assert records[0]["query"] == "labelSelector=a%3Db"
    assert records[0]["user_agent"].startswith("OpenAPI-Generator/")
    assert control.request_counts() == {
        f"GET /api/v1/namespaces/{namespace}/pods": 2,
        f"GET /api/v1/namespaces/{namespace}/pods/missing": 1,
    }
    assert control.count_requests("GET", r"/pods$") == 2
    assert control.reset_requests() == 3
    assert control.requests() == []


@pytest.mark.parametrize(
    ("action", "reason"), [(500, "InternalError"), (503, "ServiceUnavailable")]
)
def test_server_errors_hit_only_matching_requests(
    core: client.CoreV1Api, namespace: str, control, action: int, reason: str
) -> None:
    control.inject_fault(action, path=r"/pods$", method="GET", count=2)
    core.list_namespaced_config_map(namespace)  # does not match: unaffected
    for _ in range(2):
        with pytest.raises(client.ApiException) as caught:
            core.list_namespaced_pod(namespace)
        assert caught.value.status == action
        assert json.loads(caught.value.body)["reason"] == reason
    assert core.list_namespaced_pod(namespace).items == []
    assert control.faults() == []


def test_429_carries_retry_after(core: client.CoreV1Api, namespace: str, control) -> None:
    control.reset_requests()
    control.inject_fault(429, path="/pods", method="POST", retry_after=3)
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod(namespace, pod_manifest("p"))
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "3"
    body = json.loads(caught.value.body)
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 3
    (record,) = control.requests()
    assert (record["status"], record["fault"]) == (429, "429")


def test_client_go_style_read_retries_follow_retry_after(
    api_cluster, namespace: str, control
) -> None:
    api = api_cluster.api_client()
    api.configuration.client_go_retries = True
    try:
        control.reset_requests()
        control.inject_fault(429, path=r"/configmaps$", method="GET", count=2, retry_after=0)
        items = client.CoreV1Api(api).list_namespaced_config_map(namespace).items
    finally:
        api.close()
    assert items == []
    assert [r["status"] for r in control.requests()] == [429, 429, 200]


def test_dropped_connection(core: client.CoreV1Api, namespace: str, control) -> None:
    control.reset_requests()
    # urllib3 retries a dropped GET on its own (3 times by default)...
    control.inject_fault("drop", path=r"/secrets$", method="GET")
    assert core.list_namespaced_secret(namespace).items == []
    assert [(r["status"], r["fault"]) for r in control.requests()] == [(0, "drop"), (200, None)]
    # ...and gives up when every attempt is dropped.
    control.inject_fault("drop", path=r"/secrets$", method="GET", count=10)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_secret(namespace)
    assert control.count_requests("GET", r"/secrets$", status=0) == 5


def test_bad_fault_requests_are_refused(control) -> None:
    with pytest.raises(ControlError, match="fault action"):
        control.inject_fault("418")
    with pytest.raises(ControlError, match="regex"):
        control.inject_fault(500, path="(")


def test_faults_and_watch_expiry_pass_the_observer_by(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, control
) -> None:
    control.reset_requests()
    control.inject_fault(503, path=r"/pods$", method="GET")
    control.expire_next_watch()
    observer = ClusterObserver(api_client, namespace, kinds=("pods",), everything=True).start()
    try:
        core.create_namespaced_pod(namespace, pod_manifest("seen"))
        wait_until(lambda: ("Pod", "seen") in observer.seen.objects, "the observer saw the pod")
    finally:
        observer.stop()
    assert observer.errors == []
    watched = control.requests(user_agent=OBSERVER_USER_AGENT)
    assert watched and all(r["fault"] is None and r["status"] in (200, None) for r in watched)
    # Both are still there for the client they were meant for.
    assert [f["action"] for f in control.faults()] == ["503"]
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod(namespace)
    assert caught.value.status == 503
    assert control.info()["openWatches"] == 0
    with pytest.raises(client.ApiException) as expired:
        for _ in watch.Watch().stream(core.list_namespaced_pod, namespace, timeout_seconds=5):
            pass
    assert expired.value.status == 410


def test_requests_keep_their_bodies_and_a_dropped_answer_still_changes_state(
    core: client.CoreV1Api, namespace: str, control
) -> None:
    control.reset_requests()
    control.inject_fault("drop-response", path=r"/configmaps$", method="POST")
    body = {"metadata": {"name": "kept"}, "data": {"k": "v"}}
    with pytest.raises(urllib3.exceptions.HTTPError):  # urllib3 does not retry a POST
        core.create_namespaced_config_map(namespace, body, _request_timeout=5)
    assert core.read_namespaced_config_map("kept", namespace).data == {"k": "v"}
    (post,) = control.requests()[:1]
    assert post["fault"] == "drop-response" and post["status"] == 0
    assert post["body"]["data"] == {"k": "v"}


def test_clearing_faults_drops_watch_expiries_not_yet_served(
    core: client.CoreV1Api, namespace: str, control
) -> None:
    control.expire_next_watch()
    control.clear_faults()
    # A 410 here would raise: the expiry meant for an earlier client must not reach this one.
    assert list(watch.Watch().stream(core.list_namespaced_pod, namespace, timeout_seconds=1)) == []


def test_a_fault_can_act_from_the_nth_request_and_answer_after_serving(
    core: client.CoreV1Api, namespace: str, control
) -> None:
    control.reset_requests()
    # The first two POSTs pass, the third is stored but answered 504 (a timed-out answer).
    control.inject_fault(504, path=r"/configmaps$", method="POST", after=2, served=True)
    for name in ("a", "b"):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    assert caught.value.status == 504 and json.loads(caught.value.body)["reason"] == "Timeout"
    assert core.read_namespaced_config_map("c", namespace).metadata.name == "c"
    posts = [(r["status"], r["fault"]) for r in control.requests() if r["method"] == "POST"]
    assert posts == [(201, None), (201, None), (504, "504")]
    assert control.faults() == []
    with pytest.raises(ControlError, match="only an error status"):
        control.inject_fault("drop", served=True)


def test_held_requests_wait_until_released_then_are_served(
    core: client.CoreV1Api, namespace: str, control
) -> None:
    control.inject_fault("hold", path=r"/configmaps$", method="POST", count=5)
    done: list[str] = []

    def create(name: str) -> None:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
        done.append(name)

    threads = [threading.Thread(target=create, args=(n,)) for n in ("x", "y")]
    for thread in threads:
        thread.start()
    wait_until(lambda: control.held_requests() == 2, "two requests held")
    assert done == [] and core.list_namespaced_config_map(namespace).items == []
    assert control.release_held() == 2
    for thread in threads:
        thread.join(30)
    assert sorted(done) == ["x", "y"]
    assert control.faults() == [], "the hold's unused uses went with the release"
    create("z")  # not held any more
    assert control.held_requests() == 0
