"""A container's environment from its pod spec: env, envFrom, secrets, config maps, fields."""

from __future__ import annotations

import base64
import math
import re
from typing import Any, Protocol

from localcluster.quantity import parse_quantity


class ContainerConfigError(Exception):
    """The kubelet cannot build the container's config (CreateContainerConfigError)."""


class ObjectReader(Protocol):
    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None: ...


_REFERENCE_RE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand_references(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables are substituted, $$ escapes a $."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE_RE.sub(substitute, text)


def _kind_and_resource(kind: str) -> tuple[str, str]:
    return ("Secret", "secrets") if kind == "secret" else ("ConfigMap", "configmaps")


def object_data(obj: dict[str, Any], kind: str) -> dict[str, str]:
    """Decoded key/value data of a Secret (base64 in the store) or a ConfigMap."""
    if kind == "secret":
        data = {
            key: base64.b64decode(value).decode("utf-8", errors="replace")
            for key, value in (obj.get("data") or {}).items()
        }
        return {**(obj.get("stringData") or {}), **data}
    return {**(obj.get("binaryData") or {}), **(obj.get("data") or {})}


def read_source(
    store: ObjectReader, namespace: str, kind: str, name: str, optional: bool
) -> dict[str, str] | None:
    """The data of a secret/configmap, None when optional and absent."""
    _, resource = _kind_and_resource(kind)
    obj = store.get(resource, namespace, name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{name}" not found')
    return object_data(obj, kind)


def _key_ref(store: ObjectReader, namespace: str, kind: str, ref: dict[str, Any]) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    data = read_source(store, namespace, kind, name, optional)
    if data is None:
        return None
    if key not in data:
        if optional:
            return None
        label, _ = _kind_and_resource(kind)
        raise ContainerConfigError(f"couldn't find key {key} in {label} {namespace}/{name}")
    return data[key]


def _field_ref(pod: dict[str, Any], path: str) -> str:
    metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return (metadata.get(match.group(1)) or {}).get(match.group(2), "")
    values = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
    }
    if path not in values:
        raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")
    return values[path]


def _resource_field_ref(container: dict[str, Any], ref: dict[str, Any]) -> str:
    resource = ref.get("resource", "")
    section, _, name = resource.partition(".")
    amount = ((container.get("resources") or {}).get(section) or {}).get(name)
    if amount is None:
        return "0"
    value = parse_quantity(amount) / parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(value))


def container_env(
    pod: dict[str, Any], container: dict[str, Any], store: ObjectReader
) -> dict[str, str]:
    """The variables the spec declares, in the kubelet's order: envFrom, then env."""
    namespace = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind in ("secret", "configMap"):
            ref = source.get(f"{kind}Ref")
            if ref is None:
                continue
            data = read_source(
                store, namespace, kind.lower(), ref.get("name", ""), bool(ref.get("optional"))
            )
            for key, value in (data or {}).items():
                env[prefix + key] = value
    for variable in container.get("env") or []:
        name = variable["name"]
        if "value" in variable or "valueFrom" not in variable:
            env[name] = expand_references(str(variable.get("value", "")), env)
            continue
        source = variable["valueFrom"]
        value: str | None
        if "secretKeyRef" in source:
            value = _key_ref(store, namespace, "secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(store, namespace, "configmap", source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            value = _resource_field_ref(container, source["resourceFieldRef"])
        else:
            raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env
