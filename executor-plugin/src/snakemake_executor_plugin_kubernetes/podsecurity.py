"""Pod Security admission, seen from the executor: a job that needs a privileged container
cannot run in a namespace that enforces the "baseline" or "restricted" Pod Security
Standard, so it gets a clear error before anything is submitted.

The executor's ordinary pods pass "restricted" (see render.py). The namespace's labels are
read once per run (`get` on its own namespace, part of the documented Role); without that
permission the API server's refusal is quoted from the Job's FailedCreate event instead.
"""

from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient
from snakemake_executor_plugin_kubernetes.permissions import (
    Access,
    explain,
    is_missing_namespace,
    is_permanent,
)

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
REFUSING_PRIVILEGED = ("baseline", "restricted")


def read_namespace_labels(client: KubeClient, namespace: str) -> dict[str, str] | None:
    """The namespace's labels; None if the identity may not read the namespace."""
    try:
        obj = client.request("GET", f"/api/v1/namespaces/{namespace}")
    except ApiError as e:
        if e.status == 403 or (e.status == 404 and not is_missing_namespace(e, namespace)):
            return None  # not allowed to look, or a server without the namespaces resource
        if e.status == 404:
            raise WorkflowError(
                f"Kubernetes namespace {namespace!r} does not exist. Create it "
                f"(kubectl create namespace {namespace}) or set --kubernetes-namespace."
            ) from None
        if is_permanent(e, namespace):
            raise WorkflowError(explain(e, Access("get", "namespaces"), namespace)) from None
        raise
    return (obj.get("metadata") or {}).get("labels") or {}


def enforced_level(labels: dict[str, str] | None) -> str | None:
    if labels is None:
        return None
    return labels.get(ENFORCE_LABEL, "privileged")


def _privileged(manifest: dict[str, Any]) -> bool:
    spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    return any((c.get("securityContext") or {}).get("privileged") is True for c in containers)


def privilege_refusal(
    manifest: dict[str, Any], namespace: str, labels: dict[str, str] | None
) -> str | None:
    """Why the API server would refuse this Job's pods, if it is known in advance."""
    level = enforced_level(labels)
    if level not in REFUSING_PRIVILEGED or not _privileged(manifest):
        return None
    return (
        "the job needs a privileged container (--kubernetes-privileged, the rule's "
        f"k8s_privileged resource, or Apptainer), but namespace {namespace} enforces Pod "
        f'Security level "{level}" ({ENFORCE_LABEL}={level}), which refuses privileged pods, '
        "so nothing was submitted. Run such rules in a namespace whose level is privileged "
        f"(kubectl label namespace {namespace} {ENFORCE_LABEL}=privileged --overwrite, if "
        "your cluster's policy allows it), or without privileges."
    )
