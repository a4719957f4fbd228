"""A least-privilege identity for the executor: a ServiceAccount bound to exactly the Role
the executor's documentation recommends, and a kubeconfig that authenticates as it with a
TokenRequest token. `nox -s up` and the executor tests run Snakemake with this kubeconfig;
the admin kubeconfig stays next to it for kubectl and the tests' own observers."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from localcluster.kubeconfig import CONTEXT_NAME, write_kubeconfig
from snakemake_executor_plugin_kubernetes.permissions import (
    AUTOSCALER_STATUS_NAMESPACE,
    AUTOSCALER_STATUS_RULES,
    DIAGNOSIS_ROLE_NAME,
    NODE_READ_RULES,
    ROLE_NAME,
    ROLE_RULES,
)

ACCOUNT_NAME = "snakemake-executor"
RBAC_GROUP = "rbac.authorization.k8s.io"
TOKEN_SECONDS = 7 * 24 * 3600


def rules_without(resource: str, verb: str) -> list[dict[str, Any]]:
    """The documented Role's rules less one verb on one resource (tests of a missing
    permission pass them as `rules` below)."""
    rules = copy.deepcopy(ROLE_RULES)
    for rule in rules:
        if resource in rule["resources"] and verb in rule["verbs"]:
            rule["verbs"].remove(verb)
    return rules


def executor_role(namespace: str, rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": {"name": ROLE_NAME, "namespace": namespace},
        "rules": copy.deepcopy(ROLE_RULES if rules is None else rules),
    }


def _apply(create: Any, replace: Any, body: dict[str, Any]) -> None:
    from kubernetes.client.rest import ApiException

    try:
        create(body)
    except ApiException as error:
        if error.status != 409:
            raise
        replace(body)


def provision_executor_account(
    api_client: Any,
    namespace: str,
    name: str = ACCOUNT_NAME,
    rules: list[dict[str, Any]] | None = None,
) -> str:
    """Create (or update) the namespace, ServiceAccount, Role and RoleBinding; return a token.
    `rules` replaces the documented Role's rules (tests of a missing permission)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    try:
        core.create_namespace({"metadata": {"name": namespace}})
    except ApiException as error:
        if error.status != 409:
            raise
    _apply(
        lambda b: core.create_namespaced_service_account(namespace, b),
        lambda b: None,
        {"metadata": {"name": name}},
    )
    role = executor_role(namespace, rules)
    _apply(
        lambda b: rbac.create_namespaced_role(namespace, b),
        lambda b: rbac.replace_namespaced_role(ROLE_NAME, namespace, b),
        role,
    )
    binding = {
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": ROLE_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    _apply(
        lambda b: rbac.create_namespaced_role_binding(namespace, b),
        lambda b: rbac.replace_namespaced_role_binding(name, namespace, b),
        binding,
    )
    request = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}
    )
    return request.status.token


def grant_diagnosis_reads(api_client: Any, namespace: str, name: str = ACCOUNT_NAME) -> None:
    """Bind the optional reads the executor uses to explain Pending pods (list nodes, get the
    autoscaler's status ConfigMap), as docs/executor/further.md shows for a real cluster."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(api_client)
    subjects = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    binding_name = f"{name}-{namespace}-diagnosis"
    _apply(
        rbac.create_cluster_role,
        lambda b: rbac.replace_cluster_role(DIAGNOSIS_ROLE_NAME, b),
        {"metadata": {"name": DIAGNOSIS_ROLE_NAME}, "rules": copy.deepcopy(NODE_READ_RULES)},
    )
    _apply(
        rbac.create_cluster_role_binding,
        lambda b: rbac.replace_cluster_role_binding(binding_name, b),
        {
            "metadata": {"name": binding_name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": DIAGNOSIS_ROLE_NAME},
            "subjects": subjects,
        },
    )
    status_namespace = AUTOSCALER_STATUS_NAMESPACE
    _apply(
        lambda b: rbac.create_namespaced_role(status_namespace, b),
        lambda b: rbac.replace_namespaced_role(DIAGNOSIS_ROLE_NAME, status_namespace, b),
        {
            "metadata": {"name": DIAGNOSIS_ROLE_NAME, "namespace": status_namespace},
            "rules": copy.deepcopy(AUTOSCALER_STATUS_RULES),
        },
    )
    _apply(
        lambda b: rbac.create_namespaced_role_binding(status_namespace, b),
        lambda b: rbac.replace_namespaced_role_binding(binding_name, status_namespace, b),
        {
            "metadata": {"name": binding_name, "namespace": status_namespace},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": DIAGNOSIS_ROLE_NAME},
            "subjects": subjects,
        },
    )


def write_executor_kubeconfig(
    admin_kubeconfig: Path,
    target: Path,
    namespace: str,
    name: str = ACCOUNT_NAME,
    rules: list[dict[str, Any]] | None = None,
    diagnosis_reads: bool = False,
) -> Path:
    """Provision the account through the admin kubeconfig and write one for the account;
    with ``diagnosis_reads``, also bind the optional reads (see grant_diagnosis_reads)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(admin_kubeconfig))
    try:
        token = provision_executor_account(api, namespace, name, rules)
        if diagnosis_reads:
            grant_diagnosis_reads(api, namespace, name)
    finally:
        api.close()
    admin = json.loads(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    return write_kubeconfig(
        target,
        cluster["server"],
        token,
        None,
        namespace,
        user=f"system:serviceaccount:{namespace}:{name}",
        context=f"{CONTEXT_NAME}-executor",
        ca_data=base64.b64decode(cluster["certificate-authority-data"]),
    )
