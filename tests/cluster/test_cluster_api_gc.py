"""Garbage collection through ownerReferences for all three propagation policies, jobs'
orphaning default, multiple owners, namespace deletion and Job ttlSecondsAfterFinished
(https://kubernetes.io/docs/concepts/architecture/garbage-collection/)."""

from __future__ import annotations

import pytest
from kubernetes import client, watch

from localcluster.testing import job_manifest, pod_manifest, wait_until


def _owned_configmap(core: client.CoreV1Api, namespace: str, name: str, *owners) -> None:
    refs = [
        client.V1OwnerReference(
            api_version=o.api_version or "v1",
            kind=o.kind or "ConfigMap",
            name=o.metadata.name,
            uid=o.metadata.uid,
        )
        for o in owners
    ]
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, owner_references=refs)),
    )


def _configmap(core: client.CoreV1Api, namespace: str, name: str) -> client.V1ConfigMap:
    made = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
    )
    made.kind, made.api_version = "ConfigMap", "v1"
    return made


def _names(core: client.CoreV1Api, namespace: str) -> list[str]:
    return sorted(c.metadata.name for c in core.list_namespaced_config_map(namespace).items)


def test_background_deletes_dependents(core: client.CoreV1Api, namespace: str) -> None:
    owner = _configmap(core, namespace, "owner")
    _owned_configmap(core, namespace, "child", owner)
    child = core.read_namespaced_config_map("child", namespace)
    grandchild_owner = child
    grandchild_owner.kind, grandchild_owner.api_version = "ConfigMap", "v1"
    _owned_configmap(core, namespace, "grandchild", grandchild_owner)
    status = core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    # This client deserializes delete answers as plain dicts ("object").
    assert status["status"] == "Success" and status["details"]["name"] == "owner"
    wait_until(lambda: _names(core, namespace) == [], "dependents to be collected")


def test_orphan_keeps_dependents_without_owner_reference(
    core: client.CoreV1Api, namespace: str
) -> None:
    owner = _configmap(core, namespace, "owner")
    _owned_configmap(core, namespace, "child", owner)
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Orphan")
    child = core.read_namespaced_config_map("child", namespace)
    assert child.metadata.owner_references is None


def test_foreground_removes_dependents_before_owner(core: client.CoreV1Api, namespace: str) -> None:
    owner = _configmap(core, namespace, "owner")
    _owned_configmap(core, namespace, "child", owner)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    answer = core.delete_namespaced_config_map(
        "owner", namespace, body=client.V1DeleteOptions(propagation_policy="Foreground")
    )
    # The response is the owner, still present with deletionTimestamp and the finalizer.
    assert answer["kind"] == "ConfigMap" and answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    events = []
    # Until the owner is gone, not for a fixed time: a slow machine must not cut it short.
    watcher = watch.Watch()
    for event in watcher.stream(
        core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=60
    ):
        meta = event["object"].metadata
        events.append((event["type"], meta.name, tuple(meta.finalizers or ())))
        if event["type"] == "DELETED" and meta.name == "owner":
            watcher.stop()
    assert events == [
        ("MODIFIED", "owner", ("foregroundDeletion",)),
        ("DELETED", "child", ()),
        ("MODIFIED", "owner", ()),
        ("DELETED", "owner", ()),
    ]


def test_dependent_with_two_owners_survives_until_both_are_gone(
    core: client.CoreV1Api, namespace: str
) -> None:
    first, second = _configmap(core, namespace, "first"), _configmap(core, namespace, "second")
    _owned_configmap(core, namespace, "shared", first, second)
    core.delete_namespaced_config_map("first", namespace, propagation_policy="Background")
    assert _names(core, namespace) == ["second", "shared"]
    core.delete_namespaced_config_map("second", namespace, propagation_policy="Background")
    wait_until(lambda: _names(core, namespace) == [], "shared dependent to be collected")


def test_dependent_of_missing_owner_is_collected(core: client.CoreV1Api, namespace: str) -> None:
    ghost = client.V1ConfigMap(
        kind="ConfigMap",
        api_version="v1",
        metadata=client.V1ObjectMeta(name="ghost", uid="00000000-0000-0000-0000-000000000000"),
    )
    _owned_configmap(core, namespace, "orphan", ghost)
    wait_until(lambda: _names(core, namespace) == [], "dependent of a missing owner to go")


@pytest.mark.parametrize(
    ("policy", "pods_left"), [(None, 1), ("Orphan", 1), ("Background", 0), ("Foreground", 0)]
)
def test_job_deletion_policies(
    core: client.CoreV1Api,
    batch: client.BatchV1Api,
    namespace: str,
    policy: str | None,
    pods_left: int,
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("j"))
    wait_until(lambda: core.list_namespaced_pod(namespace).items, "job pod")
    kwargs = {"propagation_policy": policy} if policy else {}
    batch.delete_namespaced_job("j", namespace, **kwargs)
    if pods_left:
        # batch/v1 Jobs orphan their pods by default (and warn about it).
        pods = core.list_namespaced_pod(namespace).items
        assert len(pods) == 1 and not pods[0].metadata.owner_references
    else:
        wait_until(lambda: not core.list_namespaced_pod(namespace).items, "job pods deleted")
    with pytest.raises(client.ApiException) as caught:
        batch.read_namespaced_job("j", namespace)
    assert caught.value.status == 404


def test_job_deletion_without_policy_warns(
    api_client: client.ApiClient, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("j"))
    response = batch.delete_namespaced_job("j", namespace, _preload_content=False)
    assert "child pods are preserved by default" in response.headers["Warning"]


def test_ttl_after_finished_deletes_job_and_pods(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    from localcluster.testing import finish_pod

    batch.create_namespaced_job(namespace, job_manifest("j", ttlSecondsAfterFinished=1))
    pod = wait_until(lambda: core.list_namespaced_pod(namespace).items, "job pod")[0]
    finish_pod(core, namespace, pod.metadata.name, "Succeeded")
    wait_until(
        lambda: not batch.list_namespaced_job(namespace).items, "TTL controller to delete the job"
    )
    assert core.list_namespaced_pod(namespace).items == []


def test_namespace_deletion_removes_contents(core: client.CoreV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed-ns")))
    core.create_namespaced_pod("doomed-ns", pod_manifest("p"))
    answer = core.delete_namespace("doomed-ns")
    assert answer["status"]["phase"] == "Terminating"
    with pytest.raises(client.ApiException):
        core.read_namespace("doomed-ns")
    assert (
        core.list_pod_for_all_namespaces(field_selector="metadata.namespace=doomed-ns").items == []
    )
