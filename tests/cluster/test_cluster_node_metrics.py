"""metrics.k8s.io from the node agent's samples (what `kubectl top` reads), and the node's
CPU count as a pod's Python and Snakemake see it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from kubernetes import client

from localcluster.nodeagent import testkit
from localcluster.quantity import parse_quantity
from localcluster.testing import wait_until

node_cluster = testkit.node_cluster_fixture()
KUBECTL = shutil.which("kubectl")
ON_SPOT = {
    "nodeSelector": {"kubernetes.io/hostname": "spot-1"},
    "tolerations": [testkit.SPOT_TAINT],
}
BUSY_SCRIPT = "x = b'x' * (80 << 20)\nwhile True:\n    pass\n"


def test_metrics_api_is_discoverable_and_reports_a_busy_pods_cpu_and_memory(node_cluster) -> None:
    api = node_cluster.api_client()
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert groups["metrics.k8s.io"].preferred_version.group_version == "metrics.k8s.io/v1beta1"
    resources = client.CustomObjectsApi(api).get_api_resources("metrics.k8s.io", "v1beta1")
    resources = api.sanitize_for_serialization(resources)
    assert {r["name"]: r["kind"] for r in resources["resources"]} == {
        "nodes": "NodeMetrics",
        "pods": "PodMetrics",
    }

    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    busy = {"name": "main", "image": testkit.IMAGE, "command": ["python", "-c", BUSY_SCRIPT]}
    core.create_namespaced_pod(namespace, testkit.pod("busy", busy, **ON_SPOT))
    testkit.wait_pod(core, namespace, "busy", testkit.phase_is("Running"), "running")
    metrics = client.CustomObjectsApi(api)

    def busy_usage() -> dict[str, Any] | None:
        try:
            found = metrics.get_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", namespace, "pods", "busy"
            )
        except client.ApiException as error:
            assert error.status == 404  # no sample yet: metrics-server's answer too
            return None
        usage = found["containers"][0]["usage"]
        # Shares two host cores with the rest of the machine: a busy loop gets a good part.
        if parse_quantity(usage["cpu"]) >= parse_quantity("200m") and parse_quantity(
            usage["memory"]
        ) >= parse_quantity("70Mi"):
            return found
        return None

    found = wait_until(
        busy_usage, "busy pod's CPU and memory in PodMetrics", timeout=60, interval=1
    )
    assert found["kind"] == "PodMetrics" and found["metadata"]["namespace"] == namespace
    assert found["containers"][0]["name"] == "main"
    assert found["window"].endswith("s") and found["timestamp"].endswith("Z")
    listed = metrics.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", namespace, "pods")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["busy"]

    nodes = metrics.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
    by_name = {item["metadata"]["name"]: item for item in nodes["items"]}
    assert sorted(by_name) == ["general-a", "general-b", "gpu-1", "spot-1"]
    assert parse_quantity(by_name["spot-1"]["usage"]["memory"]) >= parse_quantity("70Mi")
    try:
        metrics.get_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", namespace, "pods", "no-such-pod"
        )
    except client.ApiException as error:
        assert error.status == 404
        status = json.loads(error.body)
        assert (status["reason"], status["message"]) == (
            "NotFound",
            f'podmetrics.metrics.k8s.io "{namespace}/no-such-pod" not found',
        )
    else:
        raise AssertionError("PodMetrics of a missing pod answered")

    if KUBECTL is not None:  # kubectl's own discovery and table of the same figures
        env = {**os.environ, "KUBECONFIG": str(node_cluster.kubeconfig)}
        top = subprocess.run(
            [KUBECTL, "top", "pod", "busy", "-n", namespace, "--no-headers"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        assert top[0] == "busy" and top[1].endswith("m") and top[2].endswith("Mi")
        nodes_top = subprocess.run(
            [KUBECTL, "top", "nodes", "--no-headers"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "spot-1" in nodes_top
    core.delete_namespace(namespace)


def test_python_and_snakemake_in_a_pod_see_the_nodes_cpu_count(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    script = (
        "import multiprocessing, os\n"
        "from snakemake.utils import available_cpu_count\n"
        "print(os.cpu_count(), multiprocessing.cpu_count(), available_cpu_count(),"
        " len(os.sched_getaffinity(0)))\n"
    )
    counter = {"name": "main", "image": testkit.IMAGE, "command": ["python", "-c", script]}
    core.create_namespaced_pod(namespace, testkit.pod("count", counter, **ON_SPOT))
    testkit.wait_pod(core, namespace, "count", testkit.phase_is("Succeeded"), "done")
    # spot-1 has 4 CPUs, whatever the host has.
    assert testkit.logs(core, namespace, "count").split() == ["4", "4", "4", "4"]
    core.delete_namespace(namespace)
