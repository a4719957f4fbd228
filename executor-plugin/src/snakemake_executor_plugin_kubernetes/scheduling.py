"""Where and how a job's pod runs: selectors, tolerations, affinity, classes, identity.

Run-wide settings apply to every job; per-rule `k8s_*` resources override or extend them.
"""

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.affinity import combine_affinities, parse_affinity
from snakemake_executor_plugin_kubernetes.config import RunConfig
from snakemake_executor_plugin_kubernetes.facts import JobFacts
from snakemake_executor_plugin_kubernetes.images import check_image_reference
from snakemake_executor_plugin_kubernetes.parsing import (
    parse_annotations,
    parse_bool,
    parse_labels,
    parse_object_name,
    parse_pull_policy,
    parse_tolerations,
)
from snakemake_executor_plugin_kubernetes.template import load_pod_template

PER_RULE_RESOURCES = (
    "k8s_node_selector",
    "k8s_tolerations",
    "k8s_labels",
    "k8s_annotations",
    "k8s_priority_class",
    "k8s_service_account",
    "k8s_runtime_class",
    "k8s_privileged",
    "k8s_image_pull_policy",
    "k8s_image",
    "k8s_pod_template",
    "k8s_affinity",
)


@dataclass
class SchedulingPlan:
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    affinity: dict[str, Any] | None = None
    priority_class: str | None = None
    runtime_class: str | None = None
    scheduler_name: str | None = None
    service_account: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    image_pull_policy: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    privileged: bool = False
    image: str | None = None  # the rule's own image, else --container-image
    pod_template: dict[str, Any] | None = None  # the rule's, merged over the run's


def check_k8s_resource_names(names: Iterable[str], kind: str, rule: str) -> None:
    """Refuse k8s_* resources this plugin does not know (a typo would be ignored)."""
    unknown = sorted(n for n in names if n.startswith("k8s_") and n not in PER_RULE_RESOURCES)
    if unknown:
        raise WorkflowError(
            f"Unknown resource {', '.join(unknown)} in {kind} {rule}: the kubernetes executor "
            f"knows {', '.join(PER_RULE_RESOURCES)}."
        )


@functools.lru_cache(maxsize=64)
def _rule_pod_template(path: str, origin: str) -> dict[str, Any] | None:
    return load_pod_template(path, origin)


def _origin(facts: JobFacts, resource: str) -> str:
    return f"resource {resource} of {facts.kind} {facts.rule}"


def plan_scheduling(config: RunConfig, facts: JobFacts, apptainer: bool = False) -> SchedulingPlan:
    res = facts.resources
    check_k8s_resource_names(res, facts.kind, facts.rule)

    def rule_value(name: str) -> Any:
        value = res.get(name)
        return None if value is None or value == "" else value

    settings = config.settings
    tolerations = [t.to_dict() for t in settings.tolerations]
    tolerations += [
        t.to_dict()
        for t in parse_tolerations(rule_value("k8s_tolerations"), _origin(facts, "k8s_tolerations"))
    ]
    affinity = parse_affinity(rule_value("k8s_affinity"), _origin(facts, "k8s_affinity"))
    if settings.spot or facts.preemptible:
        spot = settings.spot_toleration
        if spot.to_dict() not in tolerations:
            tolerations.append(spot.to_dict())
        affinity = combine_affinities(_prefer_spot_affinity(spot.key, spot.value), affinity)
    image = rule_value("k8s_image")
    template = rule_value("k8s_pod_template")

    privileged = settings.privileged or apptainer
    if rule_value("k8s_privileged") is not None:
        privileged = privileged or parse_bool(
            rule_value("k8s_privileged"), _origin(facts, "k8s_privileged")
        )

    return SchedulingPlan(
        node_selector={
            **settings.node_selector,
            **parse_labels(rule_value("k8s_node_selector"), _origin(facts, "k8s_node_selector")),
        },
        tolerations=tolerations,
        affinity=affinity,
        priority_class=parse_object_name(
            rule_value("k8s_priority_class"), _origin(facts, "k8s_priority_class")
        )
        or settings.priority_class,
        runtime_class=parse_object_name(
            rule_value("k8s_runtime_class"), _origin(facts, "k8s_runtime_class")
        )
        or settings.runtime_class,
        scheduler_name=settings.scheduler_name,
        service_account=parse_object_name(
            rule_value("k8s_service_account"), _origin(facts, "k8s_service_account")
        )
        or config.service_account,
        image_pull_secrets=list(settings.image_pull_secrets),
        image_pull_policy=parse_pull_policy(
            rule_value("k8s_image_pull_policy"), _origin(facts, "k8s_image_pull_policy")
        )
        or settings.image_pull_policy,
        labels={
            **settings.labels,
            **parse_labels(rule_value("k8s_labels"), _origin(facts, "k8s_labels")),
        },
        annotations={
            **settings.annotations,
            **parse_annotations(rule_value("k8s_annotations"), _origin(facts, "k8s_annotations")),
        },
        privileged=privileged,
        image=check_image_reference(image, _origin(facts, "k8s_image")) if image else None,
        pod_template=_rule_pod_template(str(template), _origin(facts, "k8s_pod_template"))
        if template
        else None,
    )


def _prefer_spot_affinity(key: str, value: str | None) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": key, "operator": "Exists"}
    if value is not None:
        expression = {"key": key, "operator": "In", "values": [value]}
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [expression]}}
            ]
        }
    }


def check_rules(rules: Iterable[Any], config: RunConfig) -> None:
    """Before anything is submitted: every rule's k8s_* resource names, and those of their
    values that are fixed in the Snakefile (not functions of wildcards, input or attempt).
    Values computed per job are checked when the job is rendered, before its submission."""
    for rule in rules:
        resources = getattr(rule, "resources", None) or {}
        names = [str(name) for name in resources]
        check_k8s_resource_names(names, "rule", rule.name)
        fixed: dict[str, Any] = {}
        for name in names:
            if not name.startswith("k8s_"):
                continue
            value = resources[name]
            if hasattr(value, "is_evaluable"):  # a Snakemake Resource
                if value.is_evaluable():
                    continue
                value = value.value
            fixed[name] = value
        if fixed:
            facts = JobFacts(rule=rule.name, jobid=0, attempt=1, threads=1, resources=fixed)
            plan_scheduling(config, facts)
