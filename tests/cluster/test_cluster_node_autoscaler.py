"""The local cluster's AKS node pools and cluster-autoscaler: node shapes, scale-up with its
events, NotTriggerScaleUp reasons, the status ConfigMap and scale-down.

Messages are cluster-autoscaler 1.30's (kubernetes/autoscaler,
cluster-autoscaler/processors/status/eventing_scale_up_processor.go and
core/scaledown/actuation/actuator.go); the status document is clusterstate/api's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from localcluster.launcher import RunningCluster, start_cluster
from localcluster.nodeagent import testkit
from localcluster.nodeagent.images import ImageCatalog
from localcluster.nodepools import NodePool
from localcluster.testing import wait_until

SPOT = "kubernetes.azure.com/scalesetpriority"
POOLS = [
    NodePool("nodepool1", "Standard_D2s_v3", min_count=1, max_count=2),
    NodePool("spotpool", "Standard_D4s_v5", min_count=0, max_count=1, spot=True),
    NodePool("gpupool", "Standard_NC6s_v3", min_count=0, max_count=1),
]
SCALE_DOWN_SECONDS = 3.0


@pytest.fixture(scope="module")
def pool_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    ImageCatalog.from_environment().build("base")
    cluster = start_cluster(
        tmp_path_factory.mktemp("poolcluster"),
        pools=POOLS,
        extra_args=[
            "--autoscaler-scan-interval",
            "0.3",
            "--autoscaler-provision-seconds",
            "1",
            "--autoscaler-scale-down-unneeded-seconds",
            str(SCALE_DOWN_SECONDS),
        ],
        env=dict(os.environ),
    )
    try:
        yield cluster
    finally:
        cluster.stop()
        log = (cluster.state_dir / "server.log").read_text()
        assert "Traceback" not in log, log


@pytest.fixture
def core(pool_cluster: RunningCluster) -> client.CoreV1Api:
    return testkit.core_api(pool_cluster)


def status_document(core: client.CoreV1Api) -> dict[str, Any]:
    def written() -> Any:
        # The autoscaler writes it at its first scan, which may come after the cluster is up.
        try:
            return core.read_namespaced_config_map("cluster-autoscaler-status", "kube-system")
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    configmap = wait_until(written, "the cluster-autoscaler-status ConfigMap", timeout=60)
    assert configmap.metadata.annotations["cluster-autoscaler.kubernetes.io/last-updated"]
    return yaml.safe_load(configmap.data["status"])


def node_group(document: dict[str, Any], pool: NodePool) -> dict[str, Any]:
    groups = {group["name"]: group for group in document["nodeGroups"]}
    return groups[pool.scale_set]


def pool_nodes(core: client.CoreV1Api, pool: str) -> list[str]:
    selector = f"kubernetes.azure.com/agentpool={pool}"
    return sorted(n.metadata.name for n in core.list_node(label_selector=selector).items)


def autoscaler_events(core: client.CoreV1Api, namespace: str, pod: str) -> list[tuple[str, str]]:
    return [
        (reason, message)
        for _, reason, component, message in testkit.events_of(core, namespace, pod)
        if component == "cluster-autoscaler"
    ]


def wait_event(core: client.CoreV1Api, namespace: str, pod: str, reason: str) -> str:
    def probe() -> str | None:
        found = [m for r, m in autoscaler_events(core, namespace, pod) if r == reason]
        return found[-1] if found else None

    return wait_until(probe, f"{reason} event on pod {namespace}/{pod}", timeout=60, interval=0.2)


def test_pool_nodes_look_like_aks_nodes_and_start_at_min_count(core) -> None:
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert list(nodes) == pool_nodes(core, "nodepool1")  # min 0 for the other pools
    (name,) = nodes
    assert re.fullmatch(r"aks-nodepool1-\d{8}-vmss000000", name)
    node = nodes[name]
    labels = node.metadata.labels
    assert labels["kubernetes.azure.com/agentpool"] == "nodepool1"
    assert labels["node.kubernetes.io/instance-type"] == "Standard_D2s_v3"
    assert labels["topology.kubernetes.io/zone"] == "westeurope-1"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"]
    assert node.status.capacity["cpu"] == "2"
    assert node.status.capacity["memory"] == "8Gi"
    # AKS 1.29+: 100m kube-reserved for 2 cores; memory min(20Mi*110+50Mi, 25%) + 100Mi.
    assert node.status.allocatable["cpu"] == "1900m"
    assert node.status.allocatable["memory"] == f"{8192 - 2048 - 100}Mi"

    document = status_document(core)
    assert document["autoscalerStatus"] == "Running"
    group = node_group(document, POOLS[0])
    assert group["health"]["minSize"] == 1 and group["health"]["maxSize"] == 2
    assert group["health"]["cloudProviderTarget"] == 1
    assert group["health"]["nodeCounts"]["registered"]["total"] == 1
    assert node_group(document, POOLS[2])["health"]["cloudProviderTarget"] == 0


def pending_pod(name: str, **spec: Any) -> dict[str, Any]:
    resources = spec.pop("resources", {"requests": {"cpu": "100m"}})
    return testkit.pod(name, testkit.shell_container("sleep 600", resources=resources), **spec)


def test_pods_no_pool_can_hold_get_not_trigger_scale_up_with_reasons_per_pool(core) -> None:
    namespace = testkit.new_namespace(core)
    spot_taint = f"1 node(s) had untolerated taint {{{SPOT}: spot}}"
    cases = {
        "two-gpus": (
            {"resources": {"limits": {"nvidia.com/gpu": "2"}}},
            f"pod didn't trigger scale-up: 2 Insufficient nvidia.com/gpu, {spot_taint}",
        ),
        "ssd-only": (
            {"nodeSelector": {"disktype": "ssd"}},
            "pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector, "
            + spot_taint,
        ),
        "thirty-cpus": (
            {"resources": {"requests": {"cpu": "30"}}},
            f"pod didn't trigger scale-up: 2 Insufficient cpu, {spot_taint}",
        ),
    }
    for name, (spec, _) in cases.items():
        core.create_namespaced_pod(namespace, pending_pod(name, **spec))
    for name, (_, expected) in cases.items():
        assert wait_event(core, namespace, name, "NotTriggerScaleUp") == expected
        assert [r for r, _ in autoscaler_events(core, namespace, name)] == ["NotTriggerScaleUp"]
    assert pool_nodes(core, "gpupool") == []
    core.delete_namespace(namespace)


def test_unschedulable_pod_triggers_scale_up_then_idle_node_is_scaled_down(core) -> None:
    namespace = testkit.new_namespace(core)
    pool = POOLS[0]
    big = {"requests": {"cpu": "1500m", "memory": "1Gi"}}
    selector = {"kubernetes.azure.com/agentpool": "nodepool1"}
    core.create_namespaced_pod(
        namespace, pending_pod("first", resources=big, nodeSelector=selector)
    )
    testkit.wait_pod(core, namespace, "first", testkit.phase_is("Running"), "running")

    core.create_namespaced_pod(
        namespace, pending_pod("second", resources=big, nodeSelector=selector)
    )
    message = wait_event(core, namespace, "second", "TriggeredScaleUp")
    assert message == f"pod triggered scale-up: [{{{pool.scale_set} 1->2 (max: 2)}}]"
    running = testkit.wait_pod(core, namespace, "second", testkit.phase_is("Running"), "running")
    assert running["spec"]["nodeName"] == pool.node_name(1)
    reasons = [e[1] for e in testkit.events_of(core, namespace, "second")]
    assert reasons.index("FailedScheduling") < reasons.index("TriggeredScaleUp")
    assert reasons.index("TriggeredScaleUp") < reasons.index("Scheduled")
    assert pool_nodes(core, "nodepool1") == [pool.node_name(0), pool.node_name(1)]
    group = wait_until(
        lambda: (
            (g := node_group(status_document(core), pool))["scaleUp"]["status"] == "NoActivity"
            and g
        ),
        "scale-up no longer in progress in the status ConfigMap",
        timeout=30,
    )
    assert group["health"]["cloudProviderTarget"] == 2
    assert group["health"]["nodeCounts"]["registered"]["total"] == 2

    # At its max, the pool is skipped: the real autoscaler's reason for it.
    core.create_namespaced_pod(
        namespace, pending_pod("third", resources=big, nodeSelector=selector)
    )
    assert wait_event(core, namespace, "third", "NotTriggerScaleUp") == (
        "pod didn't trigger scale-up: 1 max node group size reached, "
        "1 node(s) didn't match Pod's node affinity/selector, "
        f"1 node(s) had untolerated taint {{{SPOT}: spot}}"
    )

    core.delete_namespace(namespace)
    wait_until(
        lambda: len(pool_nodes(core, "nodepool1")) == 1,
        "an empty nodepool1 node removed by scale-down",
        timeout=60,
        interval=0.2,
    )
    (removed,) = {pool.node_name(0), pool.node_name(1)} - set(pool_nodes(core, "nodepool1"))
    node_events = testkit.events_of(core, "default", removed)
    assert (
        "Normal",
        "ScaleDown",
        "cluster-autoscaler",
        "marked the node as toBeDeleted/unschedulable",
    ) in node_events
    status_events = testkit.events_of(core, "kube-system", "cluster-autoscaler-status")
    assert (
        "Normal",
        "ScaleDownEmpty",
        "cluster-autoscaler",
        f'Scale-down: removing empty node "{removed}"',
    ) in status_events
    group = node_group(status_document(core), pool)
    assert group["health"]["cloudProviderTarget"] == 1
    # Never below min: the last node stays however long it is idle.
    assert pool_nodes(core, "nodepool1") != []


def test_spot_pool_scales_from_zero_with_aks_spot_label_and_taint(core) -> None:
    namespace = testkit.new_namespace(core)
    pool = POOLS[1]
    spot_pod = pending_pod(
        "on-spot",
        resources={"requests": {"cpu": "3"}},
        nodeSelector={SPOT: "spot"},
        tolerations=[{"key": SPOT, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}],
    )
    core.create_namespaced_pod(namespace, spot_pod)
    assert wait_event(core, namespace, "on-spot", "TriggeredScaleUp") == (
        f"pod triggered scale-up: [{{{pool.scale_set} 0->1 (max: 1)}}]"
    )
    running = testkit.wait_pod(core, namespace, "on-spot", testkit.phase_is("Running"), "running")
    node = core.read_node(running["spec"]["nodeName"])
    assert node.metadata.name == pool.node_name(0)
    assert node.metadata.labels[SPOT] == "spot"
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "Standard_D4s_v5"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [(SPOT, "spot", "NoSchedule")]
    # 4 cores: 140m reserved.
    assert node.status.allocatable["cpu"] == "3860m"
    core.delete_namespace(namespace)


def test_pool_declarations_are_checked_like_az_aks_nodepool_add() -> None:
    with pytest.raises(ValueError, match="not in the local cluster's catalogue"):
        NodePool("pool", "Standard_Z99", min_count=1, max_count=2)
    with pytest.raises(ValueError, match="1-12 lowercase"):
        NodePool("Node_Pool", "Standard_D2s_v3", min_count=1, max_count=2)
    with pytest.raises(ValueError, match="min_count"):
        NodePool("pool", "Standard_D2s_v3", min_count=3, max_count=2)
    with pytest.raises(ValueError, match="fixed node count"):
        NodePool("pool", "Standard_D2s_v3", min_count=1, max_count=2, autoscale=False)
    with pytest.raises(ValueError, match="System pool cannot be a spot pool"):
        NodePool("pool", "Standard_D2s_v3", min_count=1, max_count=2, mode="System", spot=True)


def test_pods_pending_together_are_packed_onto_as_few_new_nodes_as_they_need(core) -> None:
    namespace = testkit.new_namespace(core)
    pool = POOLS[0]
    wait_until(
        lambda: len(pool_nodes(core, "nodepool1")) == 1, "nodepool1 back at its min", timeout=60
    )
    selector = {"kubernetes.azure.com/agentpool": "nodepool1"}
    blocker = {"requests": {"cpu": "1500m"}}
    core.create_namespaced_pod(
        namespace, pending_pod("blocker", resources=blocker, nodeSelector=selector)
    )
    testkit.wait_pod(core, namespace, "blocker", testkit.phase_is("Running"), "running")
    # Neither fits beside the blocker; both fit on one new node (1900m allocatable).
    small = {"requests": {"cpu": "900m"}}
    for name in ("left", "right"):
        core.create_namespaced_pod(
            namespace, pending_pod(name, resources=small, nodeSelector=selector)
        )
    expected = f"pod triggered scale-up: [{{{pool.scale_set} 1->2 (max: 2)}}]"
    assert wait_event(core, namespace, "left", "TriggeredScaleUp") == expected
    nodes = {
        testkit.wait_pod(core, namespace, name, testkit.phase_is("Running"), "running")["spec"][
            "nodeName"
        ]
        for name in ("left", "right")
    }
    assert len(nodes) == 1 and len(pool_nodes(core, "nodepool1")) == 2
    # "right" was in the same scale-up, or (when the scheduler marked it a scan later) it
    # waited for the node already coming, which the real autoscaler does without an event.
    assert autoscaler_events(core, namespace, "right") in ([], [("TriggeredScaleUp", expected)])
    core.delete_namespace(namespace)
