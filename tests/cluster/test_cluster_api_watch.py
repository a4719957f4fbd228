"""Watch semantics through kubernetes.watch.Watch and raw streams: initial ADDED events,
resume from a resourceVersion, selector transitions, BOOKMARKs, timeouts and 410 Gone
(https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes)."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, watch

from localcluster.testing import pod_manifest


def _collect(stream, count: int) -> list[tuple[str, str]]:
    events = []
    for event in stream:
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == count:
            break
    return events


def test_watch_without_version_lists_then_streams(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("before"))
    watcher = watch.Watch()
    stream = watcher.stream(core.list_namespaced_pod, namespace, timeout_seconds=20)
    first = next(stream)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "before")
    core.create_namespaced_pod(namespace, pod_manifest("after"))
    core.patch_namespaced_pod("after", namespace, {"metadata": {"labels": {"x": "1"}}})
    core.delete_namespaced_pod("after", namespace)
    assert _collect(stream, 3) == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]
    watcher.stop()


def test_watch_resumes_from_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    listed = core.list_namespaced_pod(namespace)
    core.create_namespaced_pod(namespace, pod_manifest("a"))
    core.create_namespaced_pod(namespace, pod_manifest("b"))
    core.delete_namespaced_pod("a", namespace)
    watcher = watch.Watch()
    stream = watcher.stream(
        core.list_namespaced_pod,
        namespace,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=20,
    )
    assert _collect(stream, 3) == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    watcher.stop()


def test_label_selector_transitions_appear_as_added_and_deleted(
    core: client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_pod(namespace, pod_manifest("p", labels={"stage": "one"}))
    watcher = watch.Watch()
    stream = watcher.stream(
        core.list_namespaced_pod,
        namespace,
        label_selector="stage=two",
        resource_version=created.metadata.resource_version,
        timeout_seconds=20,
    )
    core.patch_namespaced_pod("p", namespace, {"metadata": {"labels": {"stage": "two"}}})
    core.patch_namespaced_pod("p", namespace, {"metadata": {"labels": {"stage": "three"}}})
    assert _collect(stream, 2) == [("ADDED", "p"), ("DELETED", "p")]
    watcher.stop()


def _raw_watch(api_client: client.ApiClient, namespace: str, **query) -> list[dict]:
    core = client.CoreV1Api(api_client)
    response = core.list_namespaced_pod(namespace, watch=True, _preload_content=False, **query)
    try:
        return [json.loads(line) for line in response.read().decode().splitlines() if line]
    finally:
        response.release_conn()


def test_timeout_ends_stream_with_bookmark(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    rv = core.list_namespaced_pod(namespace).metadata.resource_version
    events = _raw_watch(
        api_client,
        namespace,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    )
    assert events, "a bookmark-enabled watch that times out ends with a BOOKMARK"
    assert {e["type"] for e in events} == {"BOOKMARK"}
    last = events[-1]["object"]
    # A BOOKMARK carries only kind, apiVersion and metadata.resourceVersion.
    assert set(last) == {"kind", "apiVersion", "metadata"}
    assert last["kind"] == "Pod" and int(last["metadata"]["resourceVersion"]) >= int(rv)


def test_timeout_without_bookmarks_sends_nothing(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    rv = core.list_namespaced_pod(namespace).metadata.resource_version
    assert _raw_watch(api_client, namespace, resource_version=rv, timeout_seconds=1) == []


def test_compacted_version_gives_410_error_event(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, control
) -> None:
    old_rv = core.list_namespaced_pod(namespace).metadata.resource_version
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    control.compact()
    events = _raw_watch(api_client, namespace, resource_version=old_rv, timeout_seconds=5)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    # A continue token from before the compaction is expired too.
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod(namespace, _continue=_stale_continue_token(old_rv))
    assert caught.value.status == 410


def _stale_continue_token(rv: str) -> str:
    import base64

    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": ["", ""]})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def test_client_watch_retries_once_after_410(
    core: client.CoreV1Api, namespace: str, control
) -> None:
    """Without timeout_seconds, kubernetes.watch.Watch re-issues the watch once after a 410
    ERROR event; the second request is served normally."""
    control.expire_next_watch(1)
    rv = core.list_namespaced_pod(namespace).metadata.resource_version
    control.reset_requests()
    watcher = watch.Watch()
    stream = watcher.stream(core.list_namespaced_pod, namespace, resource_version=rv)
    result: list = []
    reader = threading.Thread(target=lambda: result.extend(_collect(stream, 1)))
    reader.start()
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    reader.join(20)
    watcher.stop()
    assert result == [("ADDED", "p")]
    watches = [r for r in control.requests() if "watch=true" in r["query"]]
    assert len(watches) == 2


def test_second_410_in_a_row_reaches_the_caller(
    core: client.CoreV1Api, namespace: str, control
) -> None:
    control.expire_next_watch(2)
    watcher = watch.Watch()
    with pytest.raises(client.ApiException) as caught:
        for _ in watcher.stream(core.list_namespaced_pod, namespace, resource_version="1"):
            pass
    assert caught.value.status == 410


def test_close_watches_ends_open_streams(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, control
) -> None:
    result: list = []
    rv = core.list_namespaced_pod(namespace).metadata.resource_version

    def run() -> None:
        result.extend(_raw_watch(api_client, namespace, resource_version=rv, timeout_seconds=60))

    reader = threading.Thread(target=run)
    reader.start()
    closed = 0
    for _ in range(100):
        closed = control.close_watches()
        if closed:
            break
        reader.join(0.05)
    reader.join(20)
    assert closed >= 1
    assert not reader.is_alive() and result == []


def test_periodic_bookmarks_track_latest_version(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """Bookmarks come every --bookmark-interval (0.3 s in these tests) while idle."""
    rv = core.list_namespaced_pod(namespace).metadata.resource_version
    events = _raw_watch(
        api_client, namespace, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=2
    )
    assert len(events) >= 3
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)


def test_abandoned_watch_is_cleaned_up(core: client.CoreV1Api, namespace: str, control) -> None:
    from localcluster.testing import wait_until

    before = control.info()["openWatches"]
    response = core.list_namespaced_pod(
        namespace, watch=True, timeout_seconds=600, _preload_content=False
    )
    wait_until(lambda: control.info()["openWatches"] == before + 1, "the watch to open")
    response.close()  # closes the socket; releasing first would pool the busy connection
    wait_until(lambda: control.info()["openWatches"] == before, "the server to drop the watch")
