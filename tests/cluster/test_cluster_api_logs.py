"""pods/log through the kubernetes client: container choice, tailLines, limitBytes, follow,
and the errors a real server gives for pods that have not started."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client

from localcluster.paths import log_path
from localcluster.testing import container, finish_pod, pod_manifest


def _write(api_cluster, namespace: str, pod: str, container_name: str, text: str) -> None:
    path = log_path(api_cluster.state_dir, namespace, pod, container_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(text)


def test_log_options(api_cluster, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    core.patch_namespaced_pod_status("p", namespace, {"status": {"phase": "Running"}})
    _write(api_cluster, namespace, "p", "main", "one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", namespace) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", namespace, tail_lines=2) == "two\nthree\n"
    assert core.read_namespaced_pod_log("p", namespace, limit_bytes=5) == "one\nt"
    assert core.read_namespaced_pod_log("p", namespace, container="main", tail_lines=0) == ""


def test_pending_pod_log_is_400(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod_log("p", namespace)
    assert caught.value.status == 400
    message = json.loads(caught.value.body)["message"]
    assert message == 'container "main" in pod "p" is waiting to start: ContainerCreating'


def test_multi_container_pod_needs_container_name(core: client.CoreV1Api, namespace: str) -> None:
    manifest = pod_manifest("p")
    manifest["spec"]["containers"] = [container("a"), container("b")]
    core.create_namespaced_pod(namespace, manifest)
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod_log("p", namespace)
    assert caught.value.status == 400
    message = json.loads(caught.value.body)["message"]
    assert message == "a container name must be specified for pod p, choose one of: [a b]"
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod_log("p", namespace, container="c")
    assert caught.value.status == 400


def test_follow_streams_until_pod_finishes(
    api_cluster, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    core.patch_namespaced_pod_status("p", namespace, {"status": {"phase": "Running"}})
    _write(api_cluster, namespace, "p", "main", "start\n")
    response = core.read_namespaced_pod_log("p", namespace, follow=True, _preload_content=False)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(response.stream(64)))
    reader.start()
    time.sleep(0.3)
    _write(api_cluster, namespace, "p", "main", "more\n")
    time.sleep(0.3)
    finish_pod(core, namespace, "p", "Succeeded")
    reader.join(20)
    assert not reader.is_alive()
    assert b"".join(chunks) == b"start\nmore\n"
