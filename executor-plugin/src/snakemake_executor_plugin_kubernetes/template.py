"""User pod templates: loaded once, merged UNDER the rendered pod (rendered values win)."""

import copy
from pathlib import Path
from typing import Any

import yaml
from snakemake_interface_common.exceptions import WorkflowError

CONTAINER_NAME = "snakemake"
_ALLOWED_TOP = {"apiVersion", "kind", "metadata", "spec"}


def load_pod_template(path: str | None, origin: str) -> dict[str, Any] | None:
    """Read a Pod, PodTemplate or bare {metadata, spec} YAML; return {metadata, spec}."""
    if not path:
        return None
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except OSError as e:
        raise WorkflowError(f"Cannot read pod template {str(file)!r} ({origin}): {e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise WorkflowError(f"Pod template {str(file)!r} ({origin}) is not YAML: {e}") from None
    return normalise_pod_template(doc, f"pod template {str(file)!r} ({origin})")


def normalise_pod_template(doc: Any, origin: str) -> dict[str, Any]:
    if isinstance(doc, dict) and doc.get("kind") == "PodTemplate":
        doc = doc.get("template")
    if not isinstance(doc, dict):
        raise WorkflowError(
            f"Invalid {origin}: expected a mapping with 'metadata' and/or 'spec' of a Pod, "
            f"got {type(doc).__name__}."
        )
    unknown = set(doc) - _ALLOWED_TOP
    if unknown:
        raise WorkflowError(f"Invalid {origin}: unexpected top-level keys {sorted(unknown)}.")
    if doc.get("kind", "Pod") != "Pod":
        raise WorkflowError(f"Invalid {origin}: kind must be Pod or PodTemplate.")
    metadata = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise WorkflowError(f"Invalid {origin}: 'metadata' and 'spec' must be mappings.")
    containers = spec.get("containers", [])
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise WorkflowError(f"Invalid {origin}: 'spec.containers' must be a list of mappings.")
    for key in ("volumes", "tolerations", "initContainers", "imagePullSecrets"):
        if not isinstance(spec.get(key, []), list):
            raise WorkflowError(f"Invalid {origin}: 'spec.{key}' must be a list.")
    return {"metadata": metadata, "spec": spec}


def _merge_named(base: list[Any], rendered: list[Any], key: str) -> list[Any]:
    """Merge lists of mappings by `key`; rendered entries win, base order first."""
    merged = [copy.deepcopy(item) for item in base]
    index = {item.get(key): i for i, item in enumerate(merged) if isinstance(item, dict)}
    for item in rendered:
        name = item.get(key) if isinstance(item, dict) else None
        if name is not None and name in index:
            merged[index[name]] = merge_under(merged[index[name]], item)
        else:
            merged.append(copy.deepcopy(item))
    return merged


_NAMED_LISTS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "env": "name",
    "imagePullSecrets": "name",
}


def merge_under(base: Any, rendered: Any) -> Any:
    """Deep-merge `rendered` over `base`: mappings recursively, named lists by name,
    tolerations concatenated, anything else replaced by the rendered value."""
    if isinstance(base, dict) and isinstance(rendered, dict):
        out = copy.deepcopy(base)
        for key, value in rendered.items():
            if key in out and isinstance(out[key], list) and isinstance(value, list):
                if key in _NAMED_LISTS:
                    out[key] = _merge_named(out[key], value, _NAMED_LISTS[key])
                elif key == "tolerations":
                    out[key] = copy.deepcopy(out[key]) + [v for v in value if v not in out[key]]
                else:
                    out[key] = copy.deepcopy(value)
            elif key in out:
                out[key] = merge_under(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(rendered)


def apply_pod_template(template: dict[str, Any] | None, pod: dict[str, Any]) -> dict[str, Any]:
    """Merge the rendered pod template spec ({metadata, spec}) over the user template.

    A single unnamed template container is taken as the job container.
    """
    if not template:
        return pod
    base = copy.deepcopy(template)
    containers = base["spec"].get("containers", [])
    if len(containers) == 1 and "name" not in containers[0]:
        containers[0]["name"] = CONTAINER_NAME
    return merge_under(base, pod)
