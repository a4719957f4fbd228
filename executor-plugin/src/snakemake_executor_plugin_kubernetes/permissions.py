"""The Kubernetes permissions the executor needs, and what to say when one is missing.

`ROLE_RULES` is the Role documented in docs/executor/further.md (a test keeps the two equal):
every request the executor makes is covered by it, and nothing more is asked for.
"""

from dataclasses import dataclass
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.client import ApiError

ROLE_NAME = "snakemake-executor"
ROLE_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["get", "list", "watch", "delete", "deletecollection"],
    },
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["create", "get", "list", "update", "patch", "delete", "deletecollection"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    # Its own namespace only (a RoleBinding grants `get` on the namespace it lives in): the
    # executor reads the Pod Security labels before submitting a privileged job.
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
]

# Optional reads that let the executor explain a Pending pod (docs/executor/further.md,
# "Waiting for a node"): without them it does without that source and logs so once.
DIAGNOSIS_ROLE_NAME = "snakemake-executor-diagnosis"
NODE_READ_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
]
AUTOSCALER_STATUS_NAMESPACE = "kube-system"
AUTOSCALER_STATUS_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["cluster-autoscaler-status"],
        "verbs": ["get"],
    },
]

# A permanent refusal: retrying cannot help, so the run fails at once.
PERMANENT_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class Access:
    """One kind of request: `verb` on `resource` (may be "pods/log") in API group `group`."""

    verb: str
    resource: str
    group: str = ""

    def can_i(self, namespace: str) -> str:
        group = f".{self.group}" if self.group else ""
        base, _, sub = self.resource.partition("/")
        target = f"{base}{group}" + (f" --subresource={sub}" if sub else "")
        return f"kubectl auth can-i {self.verb} {target} -n {namespace}"


def is_missing_namespace(error: ApiError, namespace: str) -> bool:
    return error.status == 404 and f'namespaces "{namespace}" not found' in error.message


def is_permanent(error: ApiError, namespace: str) -> bool:
    return error.status in PERMANENT_STATUSES or is_missing_namespace(error, namespace)


def explain(error: ApiError, access: Access, namespace: str) -> str:
    """What was refused, why, and the line that checks the permission."""
    what = f"{access.verb} {access.resource}" + (
        f" (API group {access.group})" if access.group else ""
    )
    if is_missing_namespace(error, namespace):
        return (
            f"Kubernetes namespace {namespace!r} does not exist ({error.message}). Create it "
            f"(kubectl create namespace {namespace}) or set --kubernetes-namespace."
        )
    if error.status == 401:
        return (
            f"The Kubernetes API server rejected the credentials (401 Unauthorized) when trying "
            f"to {what} in namespace {namespace}: the kubeconfig's token or certificate is "
            "invalid or expired (settings --kubernetes-kubeconfig, --kubernetes-context). "
            "Check with: kubectl get pods -n " + namespace
        )
    return (
        f"The Kubernetes identity may not {what} in namespace {namespace} (403 Forbidden: "
        f"{error.message}). Grant the verb {access.verb!r} on {access.resource!r} "
        f"(the Role in the executor's documentation, 'Running against a real cluster', lists "
        f"every permission the executor needs). Check with: {access.can_i(namespace)}"
    )


class PermanentRefusal(WorkflowError):
    """A request refused for good (see `is_permanent`), explained: retrying cannot help."""


def permission_error(error: ApiError, access: Access, namespace: str) -> PermanentRefusal:
    return PermanentRefusal(explain(error, access, namespace))
