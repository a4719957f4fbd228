"""List semantics: label and field selectors with the real grammar, pagination with limit
and continue, and the list shape (items without kind/apiVersion, metadata.resourceVersion)."""

from __future__ import annotations

import pytest
from kubernetes import client

from localcluster.testing import pod_manifest

PODS = {
    "a1": {"tier": "web", "env": "prod"},
    "a2": {"tier": "web", "env": "dev"},
    "b1": {"tier": "db", "env": "prod"},
    "c1": {"tier": "cache"},
}


@pytest.fixture
def labelled(core: client.CoreV1Api, namespace: str) -> str:
    for name, labels in PODS.items():
        core.create_namespaced_pod(namespace, pod_manifest(name, labels=labels))
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a1", "a2"]),
        ("tier==web", ["a1", "a2"]),
        ("tier!=web", ["b1", "c1"]),
        ("tier in (web,db)", ["a1", "a2", "b1"]),
        ("tier notin (web, db)", ["c1"]),
        ("env", ["a1", "a2", "b1"]),
        ("!env", ["c1"]),
        ("tier=web,env=prod", ["a1"]),
        ("env notin (dev),tier", ["a1", "b1", "c1"]),
        ("", ["a1", "a2", "b1", "c1"]),
    ],
)
def test_label_selectors(
    core: client.CoreV1Api, labelled: str, selector: str, expected: list[str]
) -> None:
    pods = core.list_namespaced_pod(labelled, label_selector=selector).items
    assert [p.metadata.name for p in pods] == expected


def test_bad_label_selector_is_400(core: client.CoreV1Api, labelled: str) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod(labelled, label_selector="tier in web")
    assert caught.value.status == 400


def test_field_selectors(core: client.CoreV1Api, labelled: str) -> None:
    core.patch_namespaced_pod_status("b1", labelled, {"status": {"phase": "Running"}})
    running = core.list_namespaced_pod(labelled, field_selector="status.phase=Running").items
    assert [p.metadata.name for p in running] == ["b1"]
    not_running = core.list_namespaced_pod(labelled, field_selector="status.phase!=Running")
    assert [p.metadata.name for p in not_running.items] == ["a1", "a2", "c1"]
    by_name = core.list_namespaced_pod(
        labelled, field_selector=f"metadata.name=a2,metadata.namespace={labelled}"
    )
    assert [p.metadata.name for p in by_name.items] == ["a2"]
    unscheduled = core.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName=,metadata.namespace={labelled}"
    )
    assert len(unscheduled.items) == 4
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod(labelled, field_selector="spec.hostname=x")
    assert caught.value.status == 400


def test_all_namespaces_list(core: client.CoreV1Api, labelled: str) -> None:
    everywhere = core.list_pod_for_all_namespaces(label_selector="tier=db")
    assert {(p.metadata.namespace, p.metadata.name) for p in everywhere.items} >= {(labelled, "b1")}


def test_pagination_with_limit_and_continue(core: client.CoreV1Api, labelled: str) -> None:
    first = core.list_namespaced_pod(labelled, limit=3)
    assert [p.metadata.name for p in first.items] == ["a1", "a2", "b1"]
    assert first.metadata._continue and first.metadata.remaining_item_count == 1
    # Objects created after the first page may or may not appear; deleted ones are gone.
    second = core.list_namespaced_pod(labelled, limit=3, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["c1"]
    assert second.metadata._continue is None
    assert second.metadata.resource_version == first.metadata.resource_version


def test_list_shape_matches_real_server(
    api_client: client.ApiClient, core: client.CoreV1Api, labelled: str
) -> None:
    response = core.list_namespaced_pod(labelled, _preload_content=False)
    import json

    body = json.loads(response.data)
    assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
    assert set(body["metadata"]) == {"resourceVersion"}
    # Items of a list carry no kind/apiVersion (the list does).
    assert all("kind" not in item and "apiVersion" not in item for item in body["items"])
