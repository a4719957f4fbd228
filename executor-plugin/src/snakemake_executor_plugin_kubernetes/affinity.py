"""The compact node-affinity syntax of the per-rule `k8s_affinity` resource.

    k8s_affinity="agentpool=highmem|gpu,kubernetes.io/arch=amd64; preferred=80: zone=west-1"

Terms are separated by `;`. A term is required (the default, or `required:`) or preferred
(`preferred:` with weight 50, or `preferred=W:` with W from 1 to 100). Within a term,
expressions separated by `,` must all hold:

    key=v1|v2   In          key!=v1|v2   NotIn
    key         Exists      !key         DoesNotExist
    key>N       Gt          key<N        Lt     (N an integer)

A pod can go to a node matching any one required term; preferred terms add their weight.
"""

import re
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.naming import check_label_key, check_label_value

DEFAULT_WEIGHT = 50
# Label keys hold no ':', so a leading `word:` is always a prefix.
_PREFIX = re.compile(r"^\s*(required|preferred(?:=(\d+))?)\s*:")
_COMPARISON = re.compile(r"^(?P<key>[^=!<>]+?)\s*(?P<op>!=|=|<|>)\s*(?P<values>.*)$")


def _expression(text: str, origin: str) -> dict[str, Any]:
    text = text.strip()
    if text.startswith("!"):
        key = check_label_key(text[1:].strip(), origin)
        return {"key": key, "operator": "DoesNotExist"}
    match = _COMPARISON.match(text)
    if match is None:
        return {"key": check_label_key(text, origin), "operator": "Exists"}
    key = check_label_key(match["key"].strip(), origin)
    op, values = match["op"], match["values"].strip()
    if op in ("<", ">"):
        if not re.fullmatch(r"-?\d+", values):
            raise WorkflowError(
                f"Invalid affinity expression {text!r} in {origin}: {op} needs an integer."
            )
        return {"key": key, "operator": "Gt" if op == ">" else "Lt", "values": [values]}
    items = [v.strip() for v in values.split("|")]
    if not items or any(not v for v in items):
        raise WorkflowError(
            f"Invalid affinity expression {text!r} in {origin}: expected key{op}value[|value...]."
        )
    for value in items:
        check_label_value(value, origin)
    return {"key": key, "operator": "In" if op == "=" else "NotIn", "values": items}


def parse_affinity(text: object, origin: str) -> dict[str, Any] | None:
    """`k8s_affinity` text -> a pod `affinity` with `nodeAffinity`, or None if empty."""
    if text is None or not str(text).strip():
        return None
    required: list[dict[str, Any]] = []
    preferred: list[dict[str, Any]] = []
    for term in str(text).split(";"):
        if not term.strip():
            continue
        weight = None
        prefix = _PREFIX.match(term)
        if prefix:
            if prefix[1].startswith("preferred"):
                weight = int(prefix[2]) if prefix[2] else DEFAULT_WEIGHT
                if not 1 <= weight <= 100:
                    raise WorkflowError(
                        f"Invalid affinity term {term.strip()!r} in {origin}: the weight must "
                        "be from 1 to 100."
                    )
            term = term[prefix.end() :]
        parts = [p for p in term.split(",") if p.strip()]
        if not parts:
            raise WorkflowError(f"Invalid affinity term {term.strip()!r} in {origin}: empty.")
        expressions = [_expression(p, origin) for p in parts]
        if weight is None:
            required.append({"matchExpressions": expressions})
        else:
            preferred.append({"weight": weight, "preference": {"matchExpressions": expressions}})
    return _node_affinity(required, preferred)


def combine_affinities(*affinities: dict[str, Any] | None) -> dict[str, Any] | None:
    """Required terms of all (their nodeSelectorTerms ORed) and preferred terms of all."""
    required: list[dict[str, Any]] = []
    preferred: list[dict[str, Any]] = []
    for affinity in affinities:
        node = (affinity or {}).get("nodeAffinity") or {}
        required += (node.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get(
            "nodeSelectorTerms", []
        )
        preferred += node.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    return _node_affinity(required, preferred)


def _node_affinity(
    required: list[dict[str, Any]], preferred: list[dict[str, Any]]
) -> dict[str, Any] | None:
    node_affinity: dict[str, Any] = {}
    if required:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": required
        }
    if preferred:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": node_affinity} if node_affinity else None
