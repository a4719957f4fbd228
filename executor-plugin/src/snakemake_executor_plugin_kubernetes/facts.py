"""The few facts about a Snakemake job that rendering needs, decoupled from Snakemake."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from snakemake_interface_executor_plugins.jobs import JobExecutorInterface


@dataclass(frozen=True)
class JobFacts:
    rule: str  # rule name, or group id for group jobs
    jobid: int | str  # an int, or for group jobs Snakemake's group UUID
    attempt: int
    threads: int
    resources: Mapping[str, Any] = field(default_factory=dict)
    is_group: bool = False
    is_containerized: bool = False
    preemptible: bool = False

    @property
    def kind(self) -> str:
        return "group" if self.is_group else "rule"


def job_facts(job: JobExecutorInterface, preemptible_rules: Any = None) -> JobFacts:
    rules = job.rules  # a property in Snakemake, although the interface declares a method
    rule_names = sorted(str(name) for name in (rules() if callable(rules) else rules))
    preemptible = bool(
        preemptible_rules is not None
        and any(preemptible_rules.is_preemptible(name) for name in rule_names)
    )
    return JobFacts(
        rule=job.name,
        jobid=job.jobid if isinstance(job.jobid, int) else str(job.jobid),
        attempt=int(job.attempt),
        threads=int(job.threads),
        resources=dict(job.resources.items()),
        is_group=job.is_group(),
        is_containerized=bool(job.is_containerized),
        preemptible=preemptible,
    )
