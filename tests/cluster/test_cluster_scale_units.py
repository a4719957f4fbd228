"""The local cluster's costs that grew with the number of pods: the scheduler re-trying
every waiting pod in every pass, the Job controller reading every pod in every sync, and a
paged list copying the whole collection for each page. Counts, not times."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from localcluster import store as store_module
from localcluster.nodeagent import scheduler as scheduler_module
from localcluster.nodeagent.nodeobjects import node_object
from localcluster.nodeagent.scheduler import Scheduler
from localcluster.nodes import NodeSpec
from localcluster.store import Store


def pending_pod(store: Store, name: str, cpu: str = "1", owner: str | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name, "labels": {"app": "scale"}}
    if owner is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": owner, "controller": True}
        ]
    container = {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
    return store.create(
        "pods", "default", {"metadata": metadata, "spec": {"containers": [container]}}
    )


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the pods the scheduler tried to place, one entry per try."""
    tried: list[str] = []
    original = scheduler_module.Scheduler._pick_node

    def counting(self: Scheduler, pod: dict[str, Any], free: Any) -> str | None:
        tried.append(pod["metadata"]["name"])
        return original(self, pod, free)

    monkeypatch.setattr(scheduler_module.Scheduler, "_pick_node", counting)
    return tried


def add_node(store: Store, scheduler: Scheduler, name: str, cpu: str) -> None:
    node = store.create("nodes", None, node_object(NodeSpec(name=name, cpu=cpu)))
    scheduler.nodes[name] = node


def test_pods_that_fit_no_node_wait_for_a_change_of_the_cluster(tries: list[str]) -> None:
    store = Store()
    scheduler = Scheduler(store)
    add_node(store, scheduler, "small", "500m")
    for i in range(50):
        scheduler.observe_pod("ADDED", pending_pod(store, f"p{i}"))
    assert scheduler.schedule_pending() == []
    assert len(tries) == 50

    tries.clear()
    scheduler.observe_pod("ADDED", pending_pod(store, "late"))
    scheduler.schedule_pending()
    assert tries == ["late"], "a new pod is tried alone; the 50 waiting ones are not"

    tries.clear()
    add_node(store, scheduler, "big", "2")  # a node added: every waiting pod may fit now
    bound = scheduler.schedule_pending()
    assert len(tries) == 51 and len(bound) == 2

    tries.clear()
    scheduler.schedule_pending()
    assert tries == []
    # A placed pod leaving its node frees room: the waiting pods are tried again.
    placed = bound[0][0]
    scheduler.observe_pod("DELETED", store.get("pods", "default", placed["metadata"]["name"]))
    assert len(scheduler.schedule_pending()) == 1
    assert len(tries) == 49


def test_waiting_pods_are_tried_again_after_five_minutes(
    tries: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(scheduler_module.time, "monotonic", lambda: clock[0])
    store = Store()
    scheduler = Scheduler(store)
    add_node(store, scheduler, "small", "500m")
    scheduler.observe_pod("ADDED", pending_pod(store, "p"))
    scheduler.schedule_pending()
    clock[0] += scheduler_module.UNSCHEDULABLE_RETRY_SECONDS - 1
    scheduler.schedule_pending()
    assert tries == ["p"]
    clock[0] += 1
    scheduler.schedule_pending()
    assert tries == ["p", "p"]


def test_owned_objects_come_from_the_owner_index() -> None:
    store = Store()
    for i in range(20):
        pending_pod(store, f"other-{i}", owner="uid-other")
    mine = [pending_pod(store, f"mine-{i}", owner="uid-mine")["metadata"]["name"] for i in (2, 1)]
    owned = store.list_owned("pods", "uid-mine", label_selector="app=scale")
    assert [p["metadata"]["name"] for p in owned] == sorted(mine)
    assert store.list_owned("pods", "uid-mine", label_selector="app=other") == []
    store.delete("pods", "default", "mine-1")
    assert [p["metadata"]["name"] for p in store.list_owned("pods", "uid-mine")] == ["mine-2"]


def test_a_page_copies_only_its_own_items(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    for i in range(30):
        pending_pod(store, f"p{i:02d}")
    copied: list[Any] = []

    def counting(obj: Any) -> Any:
        copied.append(obj)
        return copy.deepcopy(obj)

    monkeypatch.setattr(store_module, "copy", SimpleNamespace(deepcopy=counting))
    page, matching = store.list_page("pods", "default", limit=10, after=("default", "p09"))
    assert [p["metadata"]["name"] for p in page] == [f"p{i}" for i in range(10, 20)]
    assert matching == 20
    assert len(copied) == 10
