"""Validation the real API server performs, producing 422 Invalid with field causes.

Covers object names (DNS-1123 subdomain or label per resource), labels and annotations,
resource quantities, and the pod/job/secret fields the executor relies on.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from localcluster.errors import invalid
from localcluster.kinds import kind_for
from localcluster.quantity import parse_quantity

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_MAX_ANNOTATIONS_BYTES = 256 * 1024

Causes = list[tuple[str, str, str]]


def dns1123_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _SUBDOMAIN_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return errors


def path_segment_errors(value: str) -> list[str]:
    """apimachinery path.IsValidPathSegmentName (RBAC object names such as system:basic-user)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def qualified_name_errors(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if "/" in key and not prefix:
        errors.append("prefix part must be non-empty")
    elif prefix:
        errors.extend(f"prefix part {e}" for e in dns1123_subdomain_errors(prefix))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME_RE.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return errors


def label_value_errors(value: Any) -> list[str]:
    if not isinstance(value, str):
        return ["must be a string"]
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',"
            "  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return errors


def validate_metadata(resource: str, metadata: dict[str, Any], path: str = "metadata") -> Causes:
    causes: Causes = []
    labels = metadata.get("labels") or {}
    if not isinstance(labels, dict):
        return [("FieldValueInvalid", f"{path}.labels", "must be a map of strings")]
    for key, value in labels.items():
        for error in qualified_name_errors(str(key)):
            causes.append(
                ("FieldValueInvalid", f"{path}.labels", f'Invalid value: "{key}": {error}')
            )
        for error in label_value_errors(value):
            causes.append(
                ("FieldValueInvalid", f"{path}.labels", f'Invalid value: "{value}": {error}')
            )
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [*causes, ("FieldValueInvalid", f"{path}.annotations", "must be a map of strings")]
    total = 0
    for key, value in annotations.items():
        for error in qualified_name_errors(str(key)):
            causes.append(
                ("FieldValueInvalid", f"{path}.annotations", f'Invalid value: "{key}": {error}')
            )
        if not isinstance(value, str):
            causes.append(("FieldValueInvalid", f"{path}.annotations", f"{key}: must be a string"))
            continue
        total += len(key) + len(value)
    if total > _MAX_ANNOTATIONS_BYTES:
        causes.append(
            (
                "FieldValueTooLong",
                f"{path}.annotations",
                f"Too long: must have at most {_MAX_ANNOTATIONS_BYTES} bytes",
            )
        )
    return causes


def validate(resource: str, obj: dict[str, Any]) -> None:
    kind = kind_for(resource)
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") or ""
    causes: Causes = []
    if not name:
        causes.append(
            (
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        )
    else:
        if kind.name_rule == "path":
            errors = path_segment_errors(name)
        elif kind.name_rule == "label":
            errors = dns1123_label_errors(name)
        else:
            errors = dns1123_subdomain_errors(name)
        causes.extend(
            ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {e}') for e in errors
        )
    causes.extend(validate_metadata(resource, metadata))
    if resource == "pods":
        causes.extend(validate_pod_spec(obj.get("spec") or {}, "spec"))
    elif resource == "jobs":
        causes.extend(validate_job(obj, name))
    elif resource in ("secrets", "configmaps"):
        causes.extend(validate_data(resource, obj))
    if causes:
        raise invalid(kind.group, kind.kind, name, causes)


def validate_update(resource: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    kind = kind_for(resource)
    name = new["metadata"]["name"]
    causes: Causes = []
    if resource == "pods":
        causes.extend(_pod_spec_immutability(old.get("spec") or {}, new.get("spec") or {}))
    elif resource == "jobs":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        for field in ("selector", "completions", "completionMode", "podFailurePolicy"):
            if old_spec.get(field) != new_spec.get(field):
                causes.append(("FieldValueInvalid", f"spec.{field}", "field is immutable"))
        if old_spec.get("template") != new_spec.get("template") and not old_spec.get("suspend"):
            causes.append(("FieldValueInvalid", "spec.template", "field is immutable"))
    if causes:
        raise invalid(kind.group, kind.kind, name, causes)


def _pod_spec_immutability(old: dict[str, Any], new: dict[str, Any]) -> Causes:
    def comparable(spec: dict[str, Any]) -> dict[str, Any]:
        spec = {k: v for k, v in spec.items() if k not in ("activeDeadlineSeconds", "tolerations")}
        if not spec.get("nodeName"):
            spec.pop("nodeName", None)
        spec["containers"] = [
            {k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []
        ]
        return spec

    old_c, new_c = comparable(old), comparable(new)
    if old.get("nodeName") is None or old.get("nodeName") == "":
        new_c.pop("nodeName", None)
    if old_c != new_c:
        return [
            (
                "FieldValueForbidden",
                "spec",
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,"
                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                "(allow it to be set to 1 if it was previously negative)",
            )
        ]
    return []


def validate_resources(resources: Any, path: str) -> Causes:
    causes: Causes = []
    if not isinstance(resources, dict):
        return [("FieldValueInvalid", path, "must be an object")]
    parsed: dict[str, dict[str, Any]] = {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        if not isinstance(values, dict):
            causes.append(("FieldValueInvalid", f"{path}.{section}", "must be a map"))
            continue
        for name, value in values.items():
            field = f"{path}.{section}[{name}]"
            for error in qualified_name_errors(str(name)):
                causes.append(("FieldValueInvalid", field, f'Invalid value: "{name}": {error}'))
            try:
                quantity = parse_quantity(value)
            except (ValueError, ArithmeticError):
                causes.append(
                    (
                        "FieldValueInvalid",
                        field,
                        f'Invalid value: "{value}": must match the regex '
                        "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
                    )
                )
                continue
            if quantity < 0:
                causes.append(
                    (
                        "FieldValueInvalid",
                        field,
                        f'Invalid value: "{value}": must be greater than or equal to 0',
                    )
                )
            parsed.setdefault(section, {})[name] = quantity
    for name, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(name)
        if limit is not None and request > limit:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{path}.requests",
                    f'Invalid value: "{resources["requests"][name]}": must be less than or equal '
                    f"to {name} limit of {resources['limits'][name]}",
                )
            )
    return causes


def validate_pod_spec(spec: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        return [("FieldValueRequired", f"{path}.containers", "Required value")]
    restart = spec.get("restartPolicy")
    if restart not in ("Always", "OnFailure", "Never"):
        causes.append(
            (
                "FieldValueNotSupported",
                f"{path}.restartPolicy",
                f'Unsupported value: "{restart}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    volume_names = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        volume_name = volume.get("name", "") if isinstance(volume, dict) else ""
        for error in dns1123_label_errors(volume_name):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{path}.volumes[{index}].name",
                    f'Invalid value: "{volume_name}": {error}',
                )
            )
        volume_names.add(volume_name)
    seen = set()
    all_containers = [("containers", c) for c in containers] + [
        ("initContainers", c) for c in spec.get("initContainers") or []
    ]
    counters: dict[str, int] = {}
    for group, container in all_containers:
        index = counters[group] = counters.get(group, -1) + 1
        prefix = f"{path}.{group}[{index}]"
        if not isinstance(container, dict):
            causes.append(("FieldValueInvalid", prefix, "must be an object"))
            continue
        name = container.get("name") or ""
        if not name:
            causes.append(("FieldValueRequired", f"{prefix}.name", "Required value"))
        else:
            for error in dns1123_label_errors(name):
                causes.append(
                    ("FieldValueInvalid", f"{prefix}.name", f'Invalid value: "{name}": {error}')
                )
            if name in seen:
                causes.append(
                    ("FieldValueDuplicate", f"{prefix}.name", f'Duplicate value: "{name}"')
                )
            seen.add(name)
        if not container.get("image"):
            causes.append(("FieldValueRequired", f"{prefix}.image", "Required value"))
        causes.extend(validate_resources(container.get("resources") or {}, f"{prefix}.resources"))
        for env_index, env in enumerate(container.get("env") or []):
            env_name = env.get("name", "") if isinstance(env, dict) else ""
            if not _ENV_NAME_RE.match(env_name):
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"{prefix}.env[{env_index}].name",
                        f'Invalid value: "{env_name}": a valid environment variable name must '
                        "consist of alphabetic characters, digits, '_', '-', or '.', and must "
                        "not start with a digit",
                    )
                )
        for mount_index, mount in enumerate(container.get("volumeMounts") or []):
            mount_name = mount.get("name") if isinstance(mount, dict) else None
            if mount_name not in volume_names:
                causes.append(
                    (
                        "FieldValueNotFound",
                        f"{prefix}.volumeMounts[{mount_index}].name",
                        f'Not found: "{mount_name}"',
                    )
                )
    node_selector = spec.get("nodeSelector") or {}
    for key, value in node_selector.items():
        for error in qualified_name_errors(str(key)) + label_value_errors(value):
            causes.append(
                ("FieldValueInvalid", f"{path}.nodeSelector", f'Invalid value: "{key}": {error}')
            )
    for index, toleration in enumerate(spec.get("tolerations") or []):
        operator = toleration.get("operator", "Equal")
        effect = toleration.get("effect", "")
        if operator not in ("Equal", "Exists"):
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"{path}.tolerations[{index}].operator",
                    f'Unsupported value: "{operator}"',
                )
            )
        if effect not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"{path}.tolerations[{index}].effect",
                    f'Unsupported value: "{effect}"',
                )
            )
    return causes


def validate_job(obj: dict[str, Any], name: str) -> Causes:
    causes: Causes = []
    if name and len(name) > 63:
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be no more than 63 characters',
            )
        )
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    template_spec = template.get("spec") or {}
    causes.extend(
        validate_metadata("pods", template.get("metadata") or {}, "spec.template.metadata")
    )
    causes.extend(validate_pod_spec(template_spec, "spec.template.spec"))
    restart = template_spec.get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{restart}": supported values: "OnFailure", "Never"',
            )
        )
    for field, minimum in (
        ("parallelism", 0),
        ("completions", 0),
        ("backoffLimit", 0),
        ("activeDeadlineSeconds", 1),
        ("ttlSecondsAfterFinished", 0),
    ):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < minimum):
            relation = "greater than 0" if minimum else "greater than or equal to 0"
            causes.append(
                (
                    "FieldValueInvalid",
                    f"spec.{field}",
                    f"Invalid value: {value}: must be {relation}",
                )
            )
    policy = spec.get("podFailurePolicy")
    if policy:
        if restart != "Never":
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.podFailurePolicy",
                    "Invalid value: only allowed when template restartPolicy is Never",
                )
            )
        for index, rule in enumerate(policy.get("rules") or []):
            field = f"spec.podFailurePolicy.rules[{index}]"
            action = rule.get("action")
            if action not in ("FailJob", "Ignore", "Count", "FailIndex"):
                causes.append(
                    ("FieldValueNotSupported", f"{field}.action", f'Unsupported value: "{action}"')
                )
            has_codes = bool(rule.get("onExitCodes"))
            has_conditions = bool(rule.get("onPodConditions"))
            if has_codes == has_conditions:
                causes.append(
                    (
                        "FieldValueInvalid",
                        field,
                        "Invalid value: specifying one of OnExitCodes and OnPodConditions is "
                        "required",
                    )
                )
            if has_codes:
                operator = rule["onExitCodes"].get("operator")
                if operator not in ("In", "NotIn"):
                    causes.append(
                        (
                            "FieldValueNotSupported",
                            f"{field}.onExitCodes.operator",
                            f'Unsupported value: "{operator}"',
                        )
                    )
                values = rule["onExitCodes"].get("values") or []
                if operator == "In" and 0 in values:
                    causes.append(
                        (
                            "FieldValueInvalid",
                            f"{field}.onExitCodes.values",
                            "Invalid value: 0: must not be 0 for the In operator",
                        )
                    )
    return causes


def validate_data(resource: str, obj: dict[str, Any]) -> Causes:
    causes: Causes = []
    for section in ("data", "stringData", "binaryData"):
        values = obj.get(section) or {}
        if not isinstance(values, dict):
            causes.append(("FieldValueInvalid", section, "must be a map"))
            continue
        for key, value in values.items():
            if not _CONFIG_KEY_RE.match(str(key)):
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"{section}[{key}]",
                        f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                        "characters, '-', '_' or '.'",
                    )
                )
            base64_encoded = (
                resource == "secrets" and section == "data"
            ) or section == "binaryData"
            if base64_encoded and value is not None:
                try:
                    base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError):
                    causes.append(
                        (
                            "FieldValueInvalid",
                            f"{section}[{key}]",
                            "Invalid value: illegal base64 data",
                        )
                    )
    return causes
