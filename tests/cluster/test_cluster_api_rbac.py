"""RBAC and ServiceAccount tokens as a 1.30 API server has them: TokenRequest and legacy token
Secrets authenticate as system:serviceaccount:NS:NAME; Roles, RoleBindings, ClusterRoles and
ClusterRoleBindings grant verb/resource/subresource/namespace; a denial is the real 403 Status
(apiserver endpoints/handlers/responsewriters/errors.go forbiddenMessage); SelfSubjectAccessReview
answers `kubectl auth can-i`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster.launcher import RunningCluster
from localcluster.testing import job_manifest, wait_until

RBAC = "rbac.authorization.k8s.io"


def _as_token(cluster: RunningCluster, token: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = cluster.url
    configuration.ssl_ca_cert = str(cluster.ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


def _denied(call: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403
    return json.loads(caught.value.body)


@pytest.fixture
def runner(
    api_cluster: RunningCluster, api_client: client.ApiClient, namespace: str
) -> Iterator[client.ApiClient]:
    """A ServiceAccount `runner` with a Role that may list pods and read their logs."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "runner"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "reader"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": namespace}],
        },
    )
    request = core.create_namespaced_service_account_token(
        "runner", namespace, {"spec": {"expirationSeconds": 3600}}
    )
    api = _as_token(api_cluster, request.status.token)
    yield api
    api.close()


def test_service_account_is_limited_to_its_role(runner: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(runner)
    assert core.list_namespaced_pod(namespace).items == []
    body = _denied(lambda: core.list_namespaced_secret(namespace))
    assert body["reason"] == "Forbidden"
    assert body["details"] == {"kind": "secrets"}
    assert body["message"] == (
        f'secrets is forbidden: User "system:serviceaccount:{namespace}:runner" cannot list '
        f'resource "secrets" in API group "" in the namespace "{namespace}"'
    )
    body = _denied(lambda: core.list_pod_for_all_namespaces())
    assert body["message"] == (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:runner" cannot list '
        'resource "pods" in API group "" at the cluster scope'
    )


def test_subresources_verbs_and_groups_are_checked_apart(
    runner: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(runner)
    job = batch.create_namespaced_job(namespace, job_manifest("allowed"))
    assert job.metadata.name == "allowed"
    body = _denied(lambda: batch.delete_namespaced_job("allowed", namespace))
    assert body["message"] == (
        f'jobs.batch "allowed" is forbidden: User "system:serviceaccount:{namespace}:runner" '
        f'cannot delete resource "jobs" in API group "batch" in the namespace "{namespace}"'
    )
    assert body["details"] == {"name": "allowed", "group": "batch", "kind": "jobs"}
    body = _denied(lambda: batch.delete_collection_namespaced_job(namespace))
    assert 'cannot deletecollection resource "jobs"' in body["message"]
    core = client.CoreV1Api(runner)
    body = _denied(lambda: core.read_namespaced_pod_status("p", namespace))
    assert 'cannot get resource "pods/status"' in body["message"]
    body = _denied(lambda: core.list_namespaced_pod(namespace, watch=True, timeout_seconds=1))
    assert 'cannot watch resource "pods"' in body["message"]


def test_self_subject_access_review_answers_can_i(runner: client.ApiClient, namespace: str) -> None:
    authz = client.AuthorizationV1Api(runner)

    def can_i(verb: str, resource: str, subresource: str = "", group: str = "") -> bool:
        review = authz.create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "namespace": namespace,
                        "verb": verb,
                        "group": group,
                        "resource": resource,
                        "subresource": subresource,
                    }
                }
            }
        )
        return review.status.allowed

    assert can_i("get", "pods", "log")
    assert can_i("create", "jobs", group="batch")
    assert not can_i("delete", "jobs", group="batch")
    assert not can_i("get", "pods", "exec")


def test_legacy_token_secret_and_cluster_role_binding(
    api_cluster: RunningCluster, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "viewer"}})
    secret = core.create_namespaced_secret(
        namespace,
        {
            "metadata": {
                "name": "viewer-token",
                "annotations": {"kubernetes.io/service-account.name": "viewer"},
            },
            "type": "kubernetes.io/service-account-token",
        },
    )
    assert set(secret.data) == {"token", "namespace", "ca.crt"}
    token = base64.b64decode(secret.data["token"]).decode()
    name = f"view-nodes-{namespace}"
    rbac.create_cluster_role(
        {
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
        }
    )
    viewer = _as_token(api_cluster, token)
    try:
        assert client.CoreV1Api(viewer).list_node().kind == "NodeList"
        core.delete_namespaced_secret("viewer-token", namespace)
        with pytest.raises(ApiException) as caught:
            wait_until(lambda: client.CoreV1Api(viewer).list_node() and None, "401", timeout=0.5)
        assert caught.value.status == 401
    finally:
        viewer.close()
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


def test_unknown_token_is_401(api_cluster: RunningCluster) -> None:
    stranger = _as_token(api_cluster, "not-a-token")
    try:
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(stranger).list_namespace()
        assert caught.value.status == 401
    finally:
        stranger.close()


def test_deleting_a_namespace_deletes_its_accounts_roles_and_quotas(
    api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    name = f"gone-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_service_account(name, {"metadata": {"name": "sa"}})
    rbac.create_namespaced_role(name, {"metadata": {"name": "r"}, "rules": []})
    core.create_namespaced_resource_quota(
        name, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}
    )
    core.delete_namespace(name)
    wait_until(
        lambda: not any(n.metadata.name == name for n in core.list_namespace().items),
        "namespace gone",
    )
    assert (
        core.list_service_account_for_all_namespaces(
            field_selector=f"metadata.namespace={name}"
        ).items
        == []
    )
    assert (
        rbac.list_role_for_all_namespaces(field_selector=f"metadata.namespace={name}").items == []
    )
    assert (
        core.list_resource_quota_for_all_namespaces(
            field_selector=f"metadata.namespace={name}"
        ).items
        == []
    )
