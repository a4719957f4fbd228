"""Parsers for the compact text forms of settings and per-rule k8s_* resources."""

from dataclasses import dataclass

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.naming import (
    check_label_key,
    check_label_value,
    is_dns_subdomain,
)

TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def parse_key_values(text: str | None, origin: str) -> dict[str, str]:
    """'k=v,k2=v2' -> dict; `origin` names the setting or resource for errors."""
    result: dict[str, str] = {}
    if text is None:
        return result
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WorkflowError(f"Invalid entry {item!r} in {origin}: expected key=value.")
        result[key.strip()] = value.strip()
    return result


def unparse_key_values(values: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in values.items())


def parse_labels(text: str | None, origin: str) -> dict[str, str]:
    labels = parse_key_values(text, origin)
    for key, value in labels.items():
        check_label_key(key, origin)
        check_label_value(value, origin)
    return labels


def parse_annotations(text: str | None, origin: str) -> dict[str, str]:
    annotations = parse_key_values(text, origin)
    for key in annotations:
        check_label_key(key, origin)
    return annotations


@dataclass(frozen=True)
class Toleration:
    key: str
    value: str | None
    effect: str

    def unparse(self) -> str:
        return f"{self.key}{'' if self.value is None else '=' + self.value}:{self.effect}"

    def to_dict(self) -> dict[str, str]:
        if self.value is None:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


def parse_toleration(text: str, origin: str) -> Toleration:
    spec, sep, effect = text.strip().rpartition(":")
    if not sep or not spec:
        raise WorkflowError(
            f"Invalid toleration {text!r} in {origin}: expected key[=value]:Effect."
        )
    if effect not in TOLERATION_EFFECTS:
        raise WorkflowError(
            f"Invalid toleration {text!r} in {origin}: unknown effect {effect!r}, "
            f"expected one of {', '.join(TOLERATION_EFFECTS)}."
        )
    key, eq, value = spec.partition("=")
    check_label_key(key, origin)
    if eq:
        check_label_value(value, origin)
    return Toleration(key=key, value=value if eq else None, effect=effect)


def parse_tolerations(text: str | None, origin: str) -> list[Toleration]:
    if text is None:
        return []
    return [parse_toleration(item, origin) for item in str(text).split(",") if item.strip()]


def unparse_tolerations(tolerations: list[Toleration]) -> str:
    return ",".join(t.unparse() for t in tolerations)


def parse_names(text: str | None, origin: str) -> list[str]:
    names = [item.strip() for item in str(text or "").split(",") if item.strip()]
    for name in names:
        if not is_dns_subdomain(name):
            raise WorkflowError(f"Invalid object name {name!r} in {origin}.")
    return names


def parse_object_name(text: str | None, origin: str) -> str | None:
    if text is None or str(text).strip() == "":
        return None
    names = parse_names(str(text), origin)
    if len(names) != 1:
        raise WorkflowError(f"Invalid value {text!r} in {origin}: expected one name.")
    return names[0]


def parse_pull_policy(text: str | None, origin: str) -> str | None:
    if text is None or str(text).strip() == "":
        return None
    if text not in PULL_POLICIES:
        raise WorkflowError(
            f"Invalid image pull policy {text!r} in {origin}: expected one of "
            f"{', '.join(PULL_POLICIES)}."
        )
    return str(text)


def parse_bool(value: object, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise WorkflowError(f"Invalid boolean {value!r} in {origin}: expected true or false.")
