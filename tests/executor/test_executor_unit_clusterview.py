"""The executor reads nodes, the autoscaler's events and status ConfigMap only while a pod is
unschedulable, at most once per refresh interval, and does without any it may not read."""

from __future__ import annotations

from typing import Any

from snakemake_executor_plugin_kubernetes.client import ApiError
from snakemake_executor_plugin_kubernetes.clusterview import REFRESH_SECONDS, ClusterView
from snakemake_executor_plugin_kubernetes.placement import ClusterFacts, diagnose
from support.placement_objects import D3, GROUP, NAME, unschedulable_pod


class FakeClient:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls.append(path)
        answer = self.answers[path]
        if isinstance(answer, ApiError):
            raise answer
        return answer


EVENTS = "/api/v1/namespaces/ns/events"
STATUS = "/api/v1/namespaces/kube-system/configmaps/cluster-autoscaler-status"
NODES = "/api/v1/nodes"


def scale_up_event() -> dict[str, Any]:
    return {
        "reason": "TriggeredScaleUp",
        "message": f"pod triggered scale-up: [{{{GROUP} 1->2 (max: 3)}}]",
        "involvedObject": {"kind": "Pod", "name": NAME},
        "metadata": {"resourceVersion": "5"},
    }


def test_no_reads_without_unschedulable_pods_and_at_most_one_per_interval() -> None:
    fake = FakeClient(
        {EVENTS: {"items": [scale_up_event()]}, STATUS: {"data": {}}, NODES: {"items": [D3]}}
    )
    view = ClusterView(fake, "ns")  # type: ignore[arg-type]
    running = unschedulable_pod()
    running["status"] = {"phase": "Running"}
    assert view.diagnose([running], 0.0) == {}
    assert fake.calls == []
    first = view.diagnose([unschedulable_pod()], 1.0)
    assert first[NAME].text == "waiting for a node: scale-up of nodepool1 1->2 triggered"
    assert sorted(fake.calls) == sorted([EVENTS, STATUS, NODES])
    view.diagnose([unschedulable_pod()], 1.0 + REFRESH_SECONDS / 2)
    assert len(fake.calls) == 3
    view.diagnose([unschedulable_pod()], 1.0 + REFRESH_SECONDS)
    assert len(fake.calls) == 6


def test_forbidden_sources_are_skipped_reported_once_and_make_the_wait_undecidable() -> None:
    forbidden = ApiError(403, "Forbidden", 'nodes is forbidden: User "x" cannot list resource')
    fake = FakeClient({EVENTS: {"items": []}, STATUS: forbidden, NODES: forbidden})
    warnings: list[str] = []
    view = ClusterView(fake, "ns", on_forbidden=warnings.append)  # type: ignore[arg-type]
    found = view.diagnose([unschedulable_pod()], 0.0)
    assert not found[NAME].never  # 30.4 CPUs, but who knows which nodes exist
    assert view.facts.nodes is None and view.facts.autoscaler is None
    assert len(warnings) == 2
    assert any("kubectl auth can-i list nodes" in w for w in warnings)
    assert any(
        "kubectl auth can-i get configmaps/cluster-autoscaler-status -n kube-system" in w
        for w in warnings
    )
    view.diagnose([unschedulable_pod()], REFRESH_SECONDS)
    assert fake.calls.count(NODES) == 1  # not asked again soon after a 403
    assert len(warnings) == 2


def test_missing_status_configmap_means_no_autoscaler() -> None:
    fake = FakeClient(
        {EVENTS: {"items": []}, STATUS: ApiError(404, "NotFound"), NODES: {"items": [D3]}}
    )
    view = ClusterView(fake, "ns", no_autoscaler_grace=30)  # type: ignore[arg-type]
    found = view.diagnose([unschedulable_pod()], 0.0)
    assert view.facts.autoscaler is False
    assert found[NAME].never and found[NAME].grace == 30


def test_pods_waiting_for_the_same_reason_share_one_diagnosis() -> None:
    """10,000 Pending pods of one rule keep one Diagnosis between them, not one each."""
    fake = FakeClient({EVENTS: {"items": []}, STATUS: {"data": {}}, NODES: {"items": [D3]}})
    view = ClusterView(fake, "ns")  # type: ignore[arg-type]
    pods = []
    for i in range(3):
        pod = unschedulable_pod()
        pod["metadata"]["name"] = f"pod-{i}"
        pods.append(pod)
    other = unschedulable_pod(requests={"cpu": "1"})
    other["metadata"]["name"] = "small"
    other["status"]["conditions"][0]["message"] = "0/2 nodes are available: 2 Too many pods."
    found = view.diagnose([*pods, other], 1.0)
    assert found["pod-0"] is found["pod-1"] is found["pod-2"]
    assert found["small"] != found["pod-0"]


def test_only_the_latest_autoscaler_event_of_each_pod_is_kept_and_only_what_is_read() -> None:
    """At 10,000 Pending pods the autoscaler's events are thousands of whole objects read
    every 10 s; the view keeps one small event per pod, and diagnoses alike."""

    def event_at(version: int, reason: str, message: str) -> dict[str, Any]:
        return {
            "reason": reason,
            "message": message,
            "lastTimestamp": f"2026-11-28T10:00:{version:02d}Z",
            "involvedObject": {"kind": "Pod", "name": NAME},
            "metadata": {"resourceVersion": str(version), "managedFields": [{"x": "y" * 500}]},
            "source": {"component": "cluster-autoscaler"},
        }

    older = event_at(1, "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 Insufficient cpu")
    newest = scale_up_event() | {"lastTimestamp": "2026-11-28T10:00:09Z"}
    other_kind = event_at(12, "ScaledUpGroup", "not about a pod") | {
        "involvedObject": {"kind": "ConfigMap", "name": "cluster-autoscaler-status"}
    }
    events = [newest, older, other_kind]
    fake = FakeClient({EVENTS: {"items": events}, STATUS: {"data": {}}, NODES: {"items": [D3]}})
    view = ClusterView(fake, "ns")  # type: ignore[arg-type]
    found = view.diagnose([unschedulable_pod()], 1.0)
    assert list(view.facts.events) == [NAME]
    (kept,) = view.facts.events[NAME]
    assert kept == {
        "reason": "TriggeredScaleUp",
        "message": newest["message"],
        "lastTimestamp": "2026-11-28T10:00:09Z",
        "metadata": {"resourceVersion": "5"},
    }
    whole = ClusterFacts(autoscaler=True, nodes=[D3], events={NAME: [older, newest]})
    assert found[NAME] == diagnose(unschedulable_pod(), whole)
