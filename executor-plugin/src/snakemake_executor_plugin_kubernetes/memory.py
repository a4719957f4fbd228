"""The memory of a job whose rule sets no mem_mb: no pod runs without a memory request.

Snakemake applies its "full" default resources (mem_mb = min(max(2*input.size_mb, 1000),
8000)) to remote runs in `DAGApi.execute_workflow` (snakemake/api.py), but only after the
Snakefile has been parsed, and rules take their defaults at parse time
(`Workflow.rule`, snakemake/workflow.py). So without `--default-resources` a rule that sets
no mem_mb reaches the executor without one. This module evaluates Snakemake's default for
such a job as Snakemake would have; failing that, `--kubernetes-default-mem-mb` applies.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

from snakemake_executor_plugin_kubernetes.facts import JobFacts
from snakemake_executor_plugin_kubernetes.resources import rule_mem_mb

SOURCE_RULE = "the job's mem_mb"
SOURCE_SNAKEMAKE = "Snakemake's default resources for remote jobs"
SOURCE_SETTING = "--kubernetes-default-mem-mb"


@dataclass(frozen=True)
class MemoryChoice:
    mem_mb: int
    source: str
    detail: str = ""  # why a later source was used


def snakemake_default_resources(workflow: Any) -> Any:
    """The default resources Snakemake uses for this remote run (a `Resources`)."""
    from snakemake.resources import Resources

    settings = getattr(workflow, "resource_settings", None)
    defaults = getattr(settings, "default_resources", None)
    if defaults is None:
        # What execute_workflow sets for non-local executors when none were given.
        return Resources.default("full")
    return Resources.from_mapping(defaults)


def evaluate_default_mem_mb(job: Any, workflow: Any) -> int:
    """Snakemake's default mem_mb evaluated for `job` (raises when it cannot be)."""
    if job.is_group():
        raise ValueError("a group job has no single rule to evaluate the default for")
    resource = snakemake_default_resources(workflow).get("mem_mb")
    if resource is None or (not resource.is_evaluable() and resource.value is None):
        raise ValueError("the run's --default-resources set no mem_mb")
    value = resource.evaluate(
        job.wildcards,
        input=job.input,
        attempt=job.attempt,
        threads=job.threads,
        rulename=job.rule.name,
        async_run=workflow.async_run,
    ).value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"it evaluated to {value!r}")
    return value


def choose_memory(job: Any, workflow: Any, default_mem_mb: int) -> MemoryChoice:
    """For a job without its own mem_mb: Snakemake's default, else the setting."""
    try:
        return MemoryChoice(evaluate_default_mem_mb(job, workflow), SOURCE_SNAKEMAKE)
    except Exception as e:  # any failure of Snakemake's evaluation falls back, named
        return MemoryChoice(default_mem_mb, SOURCE_SETTING, detail=str(e) or type(e).__name__)


def with_memory(
    facts: JobFacts, job: Any, workflow: Any, default_mem_mb: int
) -> tuple[JobFacts, MemoryChoice | None]:
    """`facts` with a mem_mb for sure; the choice made, or None when the job had its own."""
    if rule_mem_mb(facts) is not None:
        return facts, None
    choice = choose_memory(job, workflow, default_mem_mb)
    resources = {**facts.resources, "mem_mb": choice.mem_mb}
    return dataclasses.replace(facts, resources=resources), choice


class MemoryLog:
    """Says once per rule and source where a job's memory came from, when not the rule."""

    def __init__(self) -> None:
        self.said: set[tuple[str, str]] = set()

    def message(self, rule: str, choice: MemoryChoice) -> str | None:
        key = (rule, choice.source)
        if key in self.said:
            return None
        self.said.add(key)
        text = (
            f"Rule {rule} sets no mem_mb: its pods request {choice.mem_mb} MB of memory "
            f"from {choice.source}"
        )
        if choice.detail:
            text += f" (Snakemake's default was not usable: {choice.detail})"
        return text + "."
