"""CRUD round trips through the unmodified kubernetes client: discovery, auth, object
identity, error Status bodies, validation (422), patches and the status subresource."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client

from localcluster.testing import pod_manifest


def _status_body(error: client.ApiException) -> dict:
    return json.loads(error.body)


def test_discovery_lists_core_and_batch(api_client: client.ApiClient) -> None:
    version = client.VersionApi(api_client).get_code()
    assert (version.major, version.minor) == ("1", "30")
    core_resources = {r.name for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert {"pods", "pods/status", "pods/log", "secrets", "configmaps", "events"} <= core_resources
    assert {"namespaces", "nodes"} <= core_resources
    assert {"serviceaccounts", "serviceaccounts/token", "limitranges"} <= core_resources
    assert {"resourcequotas", "resourcequotas/status"} <= core_resources
    groups = client.ApisApi(api_client).get_api_versions().groups
    assert [g.name for g in groups] == [
        "authorization.k8s.io",
        "batch",
        "rbac.authorization.k8s.io",
    ]
    batch = client.BatchV1Api(api_client).get_api_resources()
    assert batch.group_version == "batch/v1"
    assert {r.name for r in batch.resources} == {"jobs", "jobs/status"}


@pytest.mark.parametrize("token", ["not-the-token", None])
def test_wrong_or_missing_token_gets_401(api_cluster, token: str | None) -> None:
    configuration = client.Configuration()
    configuration.host = api_cluster.url
    configuration.ssl_ca_cert = str(api_cluster.ca_file)
    if token:
        configuration.api_key = {"BearerToken": f"Bearer {token}"}
    with client.ApiClient(configuration) as api, pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(api).list_namespace()
    assert caught.value.status == 401
    assert _status_body(caught.value)["reason"] == "Unauthorized"


def test_default_namespaces_exist(core: client.CoreV1Api) -> None:
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_create_get_replace_delete_pod(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_pod(namespace, pod_manifest("p1", labels={"a": "1"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Never"
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"
    fetched = core.read_namespaced_pod("p1", namespace)
    assert fetched.metadata.resource_version == created.metadata.resource_version
    fetched.metadata.labels["b"] = "2"
    replaced = core.replace_namespaced_pod("p1", namespace, fetched)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert replaced.metadata.labels == {"a": "1", "b": "2"}
    # A stale resourceVersion is an optimistic-concurrency conflict.
    with pytest.raises(client.ApiException) as caught:
        core.replace_namespaced_pod("p1", namespace, fetched)
    assert caught.value.status == 409
    assert _status_body(caught.value)["reason"] == "Conflict"
    deleted = core.delete_namespaced_pod("p1", namespace)
    assert deleted.metadata.deletion_timestamp is not None
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod("p1", namespace)
    body = _status_body(caught.value)
    assert caught.value.status == 404
    # metav1.Status shape, as the API reference documents for failures.
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "p1" not found',
        "reason": "NotFound",
        "details": {"name": "p1", "group": "", "kind": "pods"},
        "code": 404,
    }


def test_already_exists_and_generate_name(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"k": "v"})
    )
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"))
        )
    assert caught.value.status == 409
    assert _status_body(caught.value)["reason"] == "AlreadyExists"
    names = set()
    for _ in range(3):
        made = core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-"))
        )
        assert made.metadata.generate_name == "gen-"
        names.add(made.metadata.name)
    assert len(names) == 3 and all(n.startswith("gen-") and len(n) == 9 for n in names)


def test_resource_versions_are_monotonic_cluster_wide(
    core: client.CoreV1Api, namespace: str
) -> None:
    versions = []
    for index in range(3):
        cm = core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{index}"))
        )
        versions.append(int(cm.metadata.resource_version))
        secret = core.create_namespaced_secret(
            namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=f"s{index}"))
        )
        versions.append(int(secret.metadata.resource_version))
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod("no-such-namespace", pod_manifest("p"))
    assert caught.value.status == 404
    assert _status_body(caught.value)["message"] == 'namespaces "no-such-namespace" not found'


@pytest.mark.parametrize(
    ("manifest_change", "field"),
    [
        ({"metadata": {"name": "Bad_Name"}}, "metadata.name"),
        ({"metadata": {"name": "x" * 254}}, "metadata.name"),
        ({"metadata": {"name": "ok", "labels": {"bad key!": "v"}}}, "metadata.labels"),
        ({"metadata": {"name": "ok", "labels": {"k": "v" * 64}}}, "metadata.labels"),
        ({"metadata": {"name": "ok", "labels": {"example.com/k": "-bad"}}}, "metadata.labels"),
        (
            {
                "spec": {
                    "containers": [
                        {"name": "main", "image": "i", "resources": {"requests": {"cpu": "1.5x"}}}
                    ]
                }
            },
            "spec.containers[0].resources.requests[cpu]",
        ),
        (
            {
                "spec": {
                    "containers": [
                        {"name": "main", "image": "i", "resources": {"limits": {"memory": "-1Gi"}}}
                    ]
                }
            },
            "spec.containers[0].resources.limits[memory]",
        ),
        (
            {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "i",
                            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
                        }
                    ]
                }
            },
            "spec.containers[0].resources.requests",
        ),
        ({"spec": {"containers": [{"name": "Main", "image": "i"}]}}, "spec.containers[0].name"),
        ({"spec": {"containers": [{"name": "main"}]}}, "spec.containers[0].image"),
    ],
)
def test_invalid_pods_get_422_with_causes(
    core: client.CoreV1Api, namespace: str, manifest_change: dict, field: str
) -> None:
    manifest = pod_manifest("ok")
    manifest["metadata"].update(manifest_change.get("metadata", {}))
    manifest["spec"].update(manifest_change.get("spec", {}))
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod(namespace, manifest)
    body = _status_body(caught.value)
    assert caught.value.status == 422
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "Invalid",
        422,
    )
    assert body["details"]["kind"] == "Pod"
    assert field in {cause["field"] for cause in body["details"]["causes"]}
    assert core.list_namespaced_pod(namespace).items == []


@pytest.mark.parametrize(
    "quantity",
    ["1", "500m", "1.5Gi", "0.25", "2e3", "1E2", ".5", "128974848", "129M", "123Mi", "1k"],
)
def test_valid_quantities_are_accepted(
    core: client.CoreV1Api, namespace: str, quantity: str
) -> None:
    manifest = pod_manifest("q")
    manifest["spec"]["containers"][0]["resources"] = {"requests": {"memory": quantity}}
    created = core.create_namespaced_pod(namespace, manifest)
    assert created.spec.containers[0].resources.requests == {"memory": quantity}


def test_namespace_names_must_be_dns_labels(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="a.b")))
    assert caught.value.status == 422


def test_patch_flavours(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p", labels={"keep": "1", "drop": "1"}))
    # A dict body is sent as a strategic merge patch by the client.
    patched = core.patch_namespaced_pod(
        "p", namespace, {"metadata": {"labels": {"drop": None, "new": "1"}}}
    )
    assert patched.metadata.labels == {"keep": "1", "new": "1"}
    patched = core.patch_namespaced_pod(
        "p", namespace, [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    )
    assert patched.metadata.annotations == {"a": "b"}
    patched = core.patch_namespaced_pod(
        "p",
        namespace,
        {"metadata": {"annotations": {"c": "d"}}},
        _content_type="application/merge-patch+json",
    )
    assert patched.metadata.annotations == {"a": "b", "c": "d"}
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_pod(
            "p", namespace, [{"op": "test", "path": "/metadata/name", "value": "other"}]
        )
    assert caught.value.status == 422


def test_status_subresource_is_separate(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    # The main endpoint ignores status; /status ignores everything else.
    ignored = core.patch_namespaced_pod(
        "p", namespace, {"status": {"phase": "Running"}, "metadata": {"labels": {"x": "1"}}}
    )
    assert ignored.status.phase == "Pending" and ignored.metadata.labels == {"x": "1"}
    updated = core.patch_namespaced_pod_status(
        "p", namespace, {"status": {"phase": "Running"}, "metadata": {"labels": {"y": "1"}}}
    )
    assert updated.status.phase == "Running" and updated.metadata.labels == {"x": "1"}
    # Strategic merge merges conditions by type.
    core.patch_namespaced_pod_status(
        "p", namespace, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    )
    merged = core.patch_namespaced_pod_status(
        "p", namespace, {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}
    )
    assert {c.type for c in merged.status.conditions} == {"Ready", "PodScheduled"}


def test_pod_spec_is_mostly_immutable(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_pod("p", namespace, {"spec": {"restartPolicy": "Always"}})
    assert caught.value.status == 422
    image = core.patch_namespaced_pod(
        "p", namespace, {"spec": {"containers": [{"name": "main", "image": "other:1"}]}}
    )
    assert image.spec.containers[0].image == "other:1"


def test_secret_string_data_is_folded_into_data(core: client.CoreV1Api, namespace: str) -> None:
    secret = core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s"),
            string_data={"key": "value"},
            data={"raw": base64.b64encode(b"bytes").decode()},
        ),
    )
    assert secret.type == "Opaque" and secret.string_data is None
    assert base64.b64decode(secret.data["key"]) == b"value"
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_secret(
            namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="bad"), data={"k": "%%%"})
        )
    assert caught.value.status == 422


def test_delete_collection_honours_selectors(core: client.CoreV1Api, namespace: str) -> None:
    for index in range(4):
        core.create_namespaced_pod(
            namespace, pod_manifest(f"p{index}", labels={"group": "a" if index < 3 else "b"})
        )
    core.delete_collection_namespaced_pod(namespace, label_selector="group=a")
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["p3"]


def test_eviction_marks_disruption_and_deletes(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("p"))
    core.create_namespaced_pod_eviction(
        "p",
        namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name="p", namespace=namespace)),
    )
    assert core.list_namespaced_pod(namespace).items == []


def test_cluster_scoped_nodes(core: client.CoreV1Api) -> None:
    node = core.create_node(
        client.V1Node(metadata=client.V1ObjectMeta(name="extra-node", labels={"pool": "x"}))
    )
    try:
        assert node.metadata.namespace is None
        assert "extra-node" in {
            n.metadata.name for n in core.list_node(label_selector="pool=x").items
        }
    finally:
        core.delete_node("extra-node")


def test_system_namespaces_cannot_be_deleted(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.delete_namespace("default")
    assert caught.value.status == 403
    assert _status_body(caught.value)["message"] == (
        'namespaces "default" is forbidden: this namespace may not be deleted'
    )


def test_dry_run_is_refused_not_applied(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod(namespace, pod_manifest("p"), dry_run="All")
    assert caught.value.status == 400
    assert "dryRun" in _status_body(caught.value)["message"]
    assert core.list_namespaced_pod(namespace).items == []
