"""Rendering Job manifests in tests: a stand-in for the part of Snakemake's job that rendering
reads, the render call with test settings, and strict validation against several Kubernetes
schema versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kubernetes_validate

from snakemake_executor_plugin_kubernetes.config import build_run_config
from snakemake_executor_plugin_kubernetes.facts import job_facts
from snakemake_executor_plugin_kubernetes.render import RenderInput, render_job
from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings

SCHEMA_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
RUN_ID = "0123456789ab"
SECRET_VALUE = "s3cr3t-value-never-in-a-spec"


@dataclass
class FakeJob:
    """The part of Snakemake's JobExecutorInterface that rendering reads."""

    name: str = "align"
    jobid: int | str = 7
    attempt: int = 1
    threads: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    group: bool = False
    group_rules: tuple[str, ...] = ()
    is_containerized: bool = False

    def is_group(self) -> bool:
        return self.group

    @property
    def rules(self) -> list[str]:
        return list(self.group_rules) if self.group else [self.name]


@dataclass
class Preemptible:
    names: set[str]

    def is_preemptible(self, rule: str) -> bool:
        return rule in self.names


def render(
    job: FakeJob | None = None,
    *,
    preemptible: Preemptible | None = None,
    apptainer: bool = False,
    secret_env: tuple[str, ...] = ("AZ_TOKEN",),
    **settings: Any,
) -> dict[str, Any]:
    config = build_run_config(ExecutorSettings(**settings))
    given = RenderInput(
        run_id=RUN_ID,
        image="snakemake-k8s-azblob:latest",
        command="python -m snakemake --snakefile Snakefile --target-jobs 'align:'",
        secret_name=f"snakemake-run-{RUN_ID}",
        secret_env=secret_env,
        apptainer=apptainer,
    )
    return render_job(config, job_facts(job or FakeJob(), preemptible), given)


def validate(manifest: dict[str, Any]) -> None:
    for version in SCHEMA_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = [c for c in pod_spec(manifest)["containers"] if c["name"] == "snakemake"]
    return only
