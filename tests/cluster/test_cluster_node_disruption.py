"""Disruptions the node agent emulates on demand (eviction, node loss), and many pods at once."""

from __future__ import annotations

import os

import pytest

from localcluster.control import ControlError
from localcluster.nodeagent import testkit
from localcluster.nodeagent.testkit import pod, shell_container

node_cluster = testkit.node_cluster_fixture()

MANY_PODS = 1000 if os.environ.get("CHAOS_SCALE") == "full" else 120


def _running(core, namespace: str, name: str) -> dict:
    return testkit.wait_pod(core, namespace, name, testkit.phase_is("Running"), "running")


def test_eviction_fails_the_pod_with_a_disruption_target(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    core.create_namespaced_pod(namespace, pod("victim", shell_container("sleep 300")))
    _running(core, namespace, "victim")

    node_cluster.control.evict_pod(namespace, "victim")
    done = testkit.wait_pod(core, namespace, "victim", testkit.phase_is("Failed"), "failed")
    assert done["status"]["reason"] == "Evicted"
    target = testkit.condition(done, "DisruptionTarget")
    assert (target["status"], target["reason"]) == ("True", "EvictionByEvictionAPI")
    terminated = testkit.container_state(done)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")
    with pytest.raises(ControlError, match="HTTP 409"):
        node_cluster.control.evict_pod(namespace, "victim")
    core.delete_namespace(namespace)


def test_node_pressure_eviction_reads_like_the_kubelets(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    core.create_namespaced_pod(namespace, pod("pressed", shell_container("sleep 300")))
    _running(core, namespace, "pressed")
    node_cluster.control.evict_pod(namespace, "pressed", by="kubelet")
    done = testkit.wait_pod(core, namespace, "pressed", testkit.phase_is("Failed"), "failed")
    assert done["status"]["reason"] == "Evicted"
    assert done["status"]["message"].startswith("The node was low on resource: memory.")
    assert testkit.condition(done, "DisruptionTarget")["reason"] == "TerminationByKubelet"
    core.delete_namespace(namespace)


def test_losing_a_node_fails_its_pods_and_removes_it(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    control = node_cluster.control
    control.add_node({"name": "doomed", "cpu": "2", "memory": "4Gi", "labels": {"fate": "lost"}})
    assert "doomed" in control.nodes()
    selector = {"fate": "lost"}
    for name in ("on-doomed-1", "on-doomed-2"):
        core.create_namespaced_pod(
            namespace, pod(name, shell_container("sleep 300"), nodeSelector=selector)
        )
    survivor = pod("elsewhere", shell_container("sleep 300"), nodeSelector={"zone": "a"})
    core.create_namespaced_pod(namespace, survivor)
    for name in ("on-doomed-1", "on-doomed-2", "elsewhere"):
        _running(core, namespace, name)

    reply = control.lose_node("doomed", remove=True)
    assert sorted(reply["pods"]) == ["on-doomed-1", "on-doomed-2"]
    for name in ("on-doomed-1", "on-doomed-2"):
        done = testkit.wait_pod(core, namespace, name, testkit.phase_is("Failed"), "failed")
        target = testkit.condition(done, "DisruptionTarget")
        assert (target["reason"], target["message"]) == (
            "DeletionByPodGC",
            "PodGC: node no longer exists",
        )
        terminated = testkit.container_state(done)["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (137, "ContainerStatusUnknown")
    assert "doomed" not in [n.metadata.name for n in core.list_node().items]
    assert testkit.read_pod(core, namespace, "elsewhere")["status"]["phase"] == "Running"

    core.create_namespaced_pod(
        namespace, pod("orphaned", shell_container("true"), nodeSelector=selector)
    )
    pending = testkit.wait_pod(
        core,
        namespace,
        "orphaned",
        lambda p: testkit.condition(p, "PodScheduled") is not None,
        "a scheduling verdict",
    )
    assert testkit.condition(pending, "PodScheduled")["reason"] == "Unschedulable"
    core.delete_namespace(namespace)


def test_node_marked_not_ready_keeps_its_object_with_unreachable_taints(node_cluster) -> None:
    control = node_cluster.control
    core = testkit.core_api(node_cluster)
    control.add_node({"name": "flaky", "cpu": "1", "memory": "1Gi"})
    control.lose_node("flaky", remove=False)
    node = core.read_node("flaky")
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert [(c.status, c.reason) for c in ready] == [("Unknown", "NodeStatusUnknown")]
    assert sorted((t.key, t.effect) for t in node.spec.taints) == [
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoSchedule"),
    ]
    core.delete_node("flaky")


def test_many_trivial_pods_all_run_once(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    container = shell_container("true", resources={"requests": {"cpu": "10m", "memory": "8Mi"}})
    for index in range(MANY_PODS):
        core.create_namespaced_pod(namespace, pod(f"p-{index}", container))

    def all_done() -> list | None:
        pods = core.list_namespaced_pod(namespace).items
        phases = [p.status.phase for p in pods]
        return phases if phases.count("Succeeded") == MANY_PODS else None

    testkit.wait_until(all_done, f"{MANY_PODS} pods Succeeded", timeout=600)
    scheduled = core.list_namespaced_event(namespace, field_selector="reason=Scheduled").items
    assert len(scheduled) == MANY_PODS
    assert sum(event.count or 1 for event in scheduled) == MANY_PODS
    started = core.list_namespaced_event(namespace, field_selector="reason=Started").items
    assert len(started) == MANY_PODS
    core.delete_namespace(namespace)
