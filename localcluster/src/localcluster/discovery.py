"""Discovery documents (/version, /api, /apis, ...) in the shapes a 1.30 server returns.

Aggregated discovery (Accept: ...;as=APIGroupDiscoveryList) is declined by answering plain
application/json, which kubectl and client-go accept as the legacy format.
"""

from __future__ import annotations

from typing import Any

from localcluster.kinds import KINDS, Kind

SERVER_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-localcluster",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_VERBS_BY_SCOPE = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
]
_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "log": ["get"],
    "eviction": ["create"],
    "binding": ["create"],
    "token": ["create"],
}
_SUBRESOURCE_KINDS = {
    "log": "Pod",
    "eviction": "Eviction",
    "binding": "Binding",
    "token": "TokenRequest",
}


def _resource_entries(kind: Kind) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": kind.resource,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": list(kind.verbs) or _VERBS_BY_SCOPE,
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    entries = [entry]
    for sub in kind.subresources:
        sub_entry: dict[str, Any] = {
            "name": f"{kind.resource}/{sub}",
            "singularName": "",
            "namespaced": kind.namespaced,
            "kind": _SUBRESOURCE_KINDS.get(sub, kind.kind),
            "verbs": _SUBRESOURCE_VERBS[sub],
        }
        if sub == "eviction":
            sub_entry["group"] = "policy"
            sub_entry["version"] = "v1"
        if sub == "token":
            sub_entry["group"] = "authentication.k8s.io"
            sub_entry["version"] = "v1"
        entries.append(sub_entry)
    return entries


def resource_list(group: str, version: str) -> dict[str, Any]:
    resources = []
    for kind in KINDS.values():
        if kind.group == group and kind.version == version:
            resources.extend(_resource_entries(kind))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def core_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


# API groups served by another component through the aggregation layer (as metrics-server
# serves metrics.k8s.io): name -> version. The component serves the group's own paths.
AGGREGATED_GROUPS: dict[str, str] = {}


def register_aggregated_group(name: str, version: str) -> None:
    AGGREGATED_GROUPS[name] = version


def _aggregated(name: str) -> dict[str, Any]:
    version = {
        "groupVersion": f"{name}/{AGGREGATED_GROUPS[name]}",
        "version": AGGREGATED_GROUPS[name],
    }
    return {"name": name, "versions": [version], "preferredVersion": version}


def group_list() -> dict[str, Any]:
    groups = sorted({kind.group for kind in KINDS.values() if kind.group})
    entries = [_group(g) for g in groups] + [_aggregated(g) for g in sorted(AGGREGATED_GROUPS)]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": entries}


def group(name: str) -> dict[str, Any] | None:
    if name in AGGREGATED_GROUPS:
        return {"kind": "APIGroup", "apiVersion": "v1", **_aggregated(name)}
    if not any(kind.group == name for kind in KINDS.values()):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}
