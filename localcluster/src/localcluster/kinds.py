"""The resource types the local cluster serves, with their discovery metadata."""

from __future__ import annotations

from dataclasses import dataclass

from localcluster.errors import ApiError

RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Kind:
    resource: str  # plural, as in URLs
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    name_rule: str = "subdomain"  # subdomain | label | path (RBAC: ValidatePathSegmentName)
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()  # discovery verbs when not the usual eight

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS: dict[str, Kind] = {
    kind.resource: kind
    for kind in (
        Kind(
            "pods",
            "Pod",
            "",
            "v1",
            True,
            "pod",
            ("po",),
            ("all",),
            subresources=("status", "log", "eviction", "binding"),
        ),
        Kind("secrets", "Secret", "", "v1", True, "secret"),
        Kind("configmaps", "ConfigMap", "", "v1", True, "configmap", ("cm",)),
        Kind("events", "Event", "", "v1", True, "event", ("ev",)),
        Kind(
            "namespaces",
            "Namespace",
            "",
            "v1",
            False,
            "namespace",
            ("ns",),
            name_rule="label",
            subresources=("status",),
        ),
        Kind("nodes", "Node", "", "v1", False, "node", ("no",), subresources=("status",)),
        Kind("jobs", "Job", "batch", "v1", True, "job", (), ("all",), subresources=("status",)),
        Kind("limitranges", "LimitRange", "", "v1", True, "limitrange", ("limits",)),
        Kind(
            "resourcequotas",
            "ResourceQuota",
            "",
            "v1",
            True,
            "resourcequota",
            ("quota",),
            subresources=("status",),
        ),
        Kind(
            "serviceaccounts",
            "ServiceAccount",
            "",
            "v1",
            True,
            "serviceaccount",
            ("sa",),
            subresources=("token",),
        ),
        Kind("roles", "Role", RBAC, "v1", True, "role", name_rule="path"),
        Kind("rolebindings", "RoleBinding", RBAC, "v1", True, "rolebinding", name_rule="path"),
        Kind("clusterroles", "ClusterRole", RBAC, "v1", False, "clusterrole", name_rule="path"),
        Kind(
            "clusterrolebindings",
            "ClusterRoleBinding",
            RBAC,
            "v1",
            False,
            "clusterrolebinding",
            name_rule="path",
        ),
        Kind(
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "v1",
            False,
            "selfsubjectaccessreview",
            verbs=("create",),
        ),
    )
}


def kind_for(resource: str) -> Kind:
    try:
        return KINDS[resource]
    except KeyError:
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({resource})"
        ) from None
