"""Sidecars on the node agent. A native sidecar (an init container with restartPolicy Always,
KEP-753, on by default since 1.29) starts before the regular containers, keeps running, is
stopped once they ended, and does not decide the pod's phase. A classic sidecar is just a
second container: the pod stays Running while it runs, as on a real cluster."""

from __future__ import annotations

from localcluster.admission import SIDECAR_LABEL, sidecar_container
from localcluster.nodeagent import testkit
from localcluster.nodeagent.testkit import pod, shell_container

node_cluster = testkit.node_cluster_fixture()


def test_native_sidecar_runs_first_is_stopped_after_main_and_pod_completes(
    node_cluster,
) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    mounts = [{"name": "shared", "mountPath": "/shared"}]
    sidecar = shell_container(
        "echo up > shared/sidecar; trap 'echo down >> shared/sidecar; exit 0' TERM; "
        "while true; do sleep 0.2; done",
        name="proxy",
        restartPolicy="Always",
        volumeMounts=mounts,
    )
    # The main container fails unless the sidecar already runs: it was started first.
    main = shell_container("test -f shared/sidecar && exit 3", volumeMounts=mounts)
    spec = {"initContainers": [sidecar], "volumes": [{"name": "shared", "emptyDir": {}}]}
    core.create_namespaced_pod(namespace, pod("native", main, **spec))
    done = testkit.wait_pod(
        core, namespace, "native", testkit.phase_is("Succeeded", "Failed"), "finished"
    )
    # The phase follows the regular containers only: exit 3 fails the pod, whatever the
    # sidecar's own exit.
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    (proxy,) = done["status"]["initContainerStatuses"]
    assert proxy["state"]["terminated"]["exitCode"] == 0
    kinds = [reason for _, reason, _, _ in testkit.events_of(core, namespace, "native")]
    assert kinds.count("Started") == 2
    assert "Killing" in kinds
    core.delete_namespace(namespace)


def test_native_sidecar_does_not_keep_a_succeeded_pod_running(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    sidecar = sidecar_container(native=True)
    main = shell_container("echo work")
    core.create_namespaced_pod(namespace, pod("quick", main, initContainers=[sidecar]))
    done = testkit.wait_pod(
        core, namespace, "quick", testkit.phase_is("Succeeded", "Failed"), "finished"
    )
    assert done["status"]["phase"] == "Succeeded"
    core.delete_namespace(namespace)


def test_classic_sidecar_keeps_the_pod_running_after_the_main_container(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    core.patch_namespace(namespace, {"metadata": {"labels": {SIDECAR_LABEL: "classic"}}})
    core.create_namespaced_pod(namespace, pod("classic", shell_container("exit 0")))

    def main_done_pod_running(pod_json: dict) -> bool:
        states = {s["name"]: s["state"] for s in pod_json["status"].get("containerStatuses") or []}
        return "terminated" in states.get("main", {}) and "running" in states.get("mesh-proxy", {})

    running = testkit.wait_pod(core, namespace, "classic", main_done_pod_running, "main ended")
    assert running["status"]["phase"] == "Running"
    core.delete_namespace(namespace)
