"""The node agent's scheduler: nodes as registered, capacity, taints, selectors, affinity."""

from __future__ import annotations

from typing import Any

from localcluster.nodeagent import testkit
from localcluster.nodeagent.testkit import pod, shell_container

node_cluster = testkit.node_cluster_fixture()


def test_nodes_are_registered_with_capacity_labels_taints_and_ready(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert sorted(nodes) == ["general-a", "general-b", "gpu-1", "spot-1"]
    gpu = nodes["gpu-1"]
    assert gpu.status.capacity["cpu"] == "4"
    assert gpu.status.capacity["memory"] == "16Gi"
    assert gpu.status.allocatable["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in nodes["general-a"].status.allocatable
    assert gpu.metadata.labels["kubernetes.io/hostname"] == "gpu-1"
    assert gpu.metadata.labels["generation"] == "5"
    assert [(t.key, t.value, t.effect) for t in gpu.spec.taints] == [("sku", "gpu", "NoSchedule")]
    ready = [c for c in gpu.status.conditions if c.type == "Ready"]
    assert [(c.status, c.reason) for c in ready] == [("True", "KubeletReady")]
    assert gpu.status.node_info.kubelet_version.startswith("v1.")


def test_pod_that_does_not_fit_is_unschedulable_then_runs_when_capacity_frees(
    node_cluster,
) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    on_a = {"kubernetes.io/hostname": "general-a"}
    blocker = shell_container(
        "sleep 600", resources={"requests": {"cpu": "1500m", "memory": "64Mi"}}
    )
    core.create_namespaced_pod(namespace, pod("blocker", blocker, nodeSelector=on_a))
    testkit.wait_pod(core, namespace, "blocker", testkit.phase_is("Running"), "running")

    waiter = shell_container("echo ran", resources={"requests": {"cpu": "1"}})
    core.create_namespaced_pod(namespace, pod("waiter", waiter, nodeSelector=on_a))
    expected = (
        "0/4 nodes are available: 1 Insufficient cpu, "
        "1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {kubernetes.azure.com/scalesetpriority: spot}, "
        "1 node(s) had untolerated taint {sku: gpu}. "
        "preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod, "
        "3 Preemption is not helpful for scheduling."
    )
    pending = testkit.wait_pod(
        core,
        namespace,
        "waiter",
        lambda p: (testkit.condition(p, "PodScheduled") or {}).get("reason") == "Unschedulable",
        "reported Unschedulable",
    )
    scheduled = testkit.condition(pending, "PodScheduled")
    assert scheduled["status"] == "False"
    assert scheduled["message"] == expected
    assert pending["status"]["phase"] == "Pending"
    assert not pending["spec"].get("nodeName")
    failed = [e for e in testkit.events_of(core, namespace, "waiter") if e[1] == "FailedScheduling"]
    assert failed == [("Warning", "FailedScheduling", "default-scheduler", expected)]

    core.delete_namespaced_pod("blocker", namespace)
    done = testkit.wait_pod(core, namespace, "waiter", testkit.phase_is("Succeeded"), "ran")
    assert done["spec"]["nodeName"] == "general-a"
    assert testkit.condition(done, "PodScheduled")["status"] == "True"
    scheduled_events = [
        e for e in testkit.events_of(core, namespace, "waiter") if e[1] == "Scheduled"
    ]
    assert scheduled_events == [
        (
            "Normal",
            "Scheduled",
            "default-scheduler",
            f"Successfully assigned {namespace}/waiter to general-a",
        )
    ]
    core.delete_namespace(namespace)


def test_insufficient_resources_on_every_node_name_each_resource(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    greedy = shell_container("true", resources={"requests": {"cpu": "3", "memory": "20Gi"}})
    everything = [{"operator": "Exists"}]
    core.create_namespaced_pod(namespace, pod("greedy", greedy, tolerations=everything))
    pending = testkit.wait_pod(
        core,
        namespace,
        "greedy",
        lambda p: testkit.condition(p, "PodScheduled") is not None,
        "a scheduling verdict",
    )
    assert testkit.condition(pending, "PodScheduled")["message"] == (
        "0/4 nodes are available: 2 Insufficient cpu, 4 Insufficient memory. "
        "preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod."
    )
    core.delete_namespace(namespace)


def _placements(core, namespace: str, pods: dict[str, dict[str, Any]]) -> dict[str, str]:
    for name, spec in pods.items():
        core.create_namespaced_pod(namespace, pod(name, shell_container("true"), **spec))
    placed = {}
    for name in pods:
        done = testkit.wait_pod(core, namespace, name, testkit.phase_is("Succeeded"), "done")
        placed[name] = done["spec"]["nodeName"]
    return placed


def test_tolerations_node_selectors_and_node_affinity_choose_nodes(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)

    def required(*expressions: dict[str, Any]) -> dict[str, Any]:
        terms = [{"matchExpressions": list(expressions)}]
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }

    spot_toleration = [{**testkit.SPOT_TAINT, "operator": "Equal"}]
    everything = [{"operator": "Exists"}]
    placed = _placements(
        core,
        namespace,
        {
            "spot": {
                "nodeSelector": {"kubernetes.azure.com/scalesetpriority": "spot"},
                "tolerations": spot_toleration,
            },
            "zone-b": {"affinity": required({"key": "zone", "operator": "In", "values": ["b"]})},
            "not-zone-a": {
                "affinity": required(
                    {"key": "zone", "operator": "NotIn", "values": ["a"]},
                    {"key": "zone", "operator": "Exists"},
                )
            },
            "newer-than-4": {
                "tolerations": everything,
                "affinity": required({"key": "generation", "operator": "Gt", "values": ["4"]}),
            },
            "older-than-6-tolerating-sku": {
                "tolerations": [{"key": "sku", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": required({"key": "generation", "operator": "Lt", "values": ["6"]}),
            },
            "no-priority-label": {
                "tolerations": everything,
                "affinity": {
                    **required(
                        {
                            "key": "kubernetes.azure.com/scalesetpriority",
                            "operator": "DoesNotExist",
                        },
                        {"key": "pool", "operator": "In", "values": ["general", "spot"]},
                    ),
                },
            },
            "prefers-zone-a": {
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 50,
                                "preference": {
                                    "matchExpressions": [
                                        {"key": "zone", "operator": "In", "values": ["a"]}
                                    ]
                                },
                            }
                        ]
                    }
                }
            },
            "gpu": {
                "tolerations": [{**testkit.GPU_TAINT, "operator": "Equal"}],
                "containers": [
                    shell_container("true", resources={"limits": {"nvidia.com/gpu": "1"}})
                ],
            },
        },
    )
    assert placed["spot"] == "spot-1"
    assert placed["zone-b"] == "general-b"
    assert placed["not-zone-a"] == "general-b"
    assert placed["newer-than-4"] == "gpu-1"
    assert placed["older-than-6-tolerating-sku"] == "gpu-1"
    assert placed["no-priority-label"] in ("general-a", "general-b")
    assert placed["prefers-zone-a"] == "general-a"
    assert placed["gpu"] == "gpu-1"
    core.delete_namespace(namespace)


def test_untolerated_taints_keep_pods_off_tainted_nodes(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    wrong_value = [{"key": "sku", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}]
    container = shell_container("true", resources={"limits": {"nvidia.com/gpu": "1"}})
    core.create_namespaced_pod(namespace, pod("gpu-wrong", container, tolerations=wrong_value))
    pending = testkit.wait_pod(
        core,
        namespace,
        "gpu-wrong",
        lambda p: testkit.condition(p, "PodScheduled") is not None,
        "a scheduling verdict",
    )
    assert testkit.condition(pending, "PodScheduled")["message"] == (
        "0/4 nodes are available: 1 node(s) had untolerated taint "
        "{kubernetes.azure.com/scalesetpriority: spot}, 1 node(s) had untolerated taint "
        "{sku: gpu}, 2 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available: "
        "2 No preemption victims found for incoming pod, 2 Preemption is not helpful for "
        "scheduling."
    )
    core.delete_namespace(namespace)
