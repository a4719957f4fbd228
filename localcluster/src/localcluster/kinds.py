"""The resource types the local cluster serves, with their discovery metadata."""

from __future__ import annotations

from dataclasses import dataclass

from localcluster.errors import ApiError


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
    name_rule: str = "subdomain"  # subdomain | label
    subresources: tuple[str, ...] = ()

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
    )
}


def kind_for(resource: str) -> Kind:
    try:
        return KINDS[resource]
    except KeyError:
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({resource})"
        ) from None
