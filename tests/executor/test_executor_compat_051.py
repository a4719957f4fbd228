"""Drop-in for the upstream executor 0.5.1: its command line parses unchanged, and jobs of a
workflow that uses its settings and resources render, field by field, to what 0.5.1
documents (docs/further.md and the settings' help of 0.5.1), validated strictly.

The jobs are Snakemake's own: the Snakefile is parsed and its DAG built in-process, so the
resources are those Snakemake evaluates, not hand-written dicts.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import configargparse
import kubernetes_validate
import pytest
from snakemake.api import SnakemakeApi
from snakemake.resources import Resources
from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

from snakemake_executor_plugin_kubernetes.config import build_run_config
from snakemake_executor_plugin_kubernetes.facts import job_facts
from snakemake_executor_plugin_kubernetes.memory import (
    SOURCE_SETTING,
    SOURCE_SNAKEMAKE,
    MemoryLog,
    with_memory,
)
from snakemake_executor_plugin_kubernetes.render import RenderInput, render_job
from snakemake_executor_plugin_kubernetes.volumes import PersistentVolume

SCHEMA_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
IMAGE = "snakemake/snakemake:v9"

# A 0.5.1 user's command line, every setting of 0.5.1 in its own syntax.
UPSTREAM_ARGS = [
    "--kubernetes-namespace",
    "pipelines",
    "--kubernetes-cpu-scalar",
    "0.9",
    "--kubernetes-service-account-name",
    "workload-id",
    "--kubernetes-privileged",
    "--kubernetes-persistent-volumes",
    "reference:/ref",
    "scratch.data:/scratch",
    "--kubernetes-omit-job-cleanup",
]

# The resources 0.5.1 documents (docs/further.md), as its users write them.
SNAKEFILE = """
rule all:
    input: "gpu.txt", "amd.txt", "plain.txt"

rule nvidia:
    output: "gpu.txt"
    threads: 4
    resources:
        gpu=1,
        gpu_manufacturer="nvidia",
        machine_type="n1-standard-16",
        scale=0,
        mem_mb=4000,
        disk_mb=10000,
    shell: "nvidia-smi > {output}"

rule amd:
    output: "amd.txt"
    threads: 2
    resources:
        gpu=2,
        gpu_manufacturer="amd",
        mem_mb=2000,
    shell: "rocm-smi > {output}"

rule plain:
    output: "plain.txt"
    shell: "echo plain > {output}"
"""


def parse_settings(argv: list[str]) -> Any:
    plugin = ExecutorPluginRegistry().get_plugin("kubernetes")
    parser = configargparse.ArgumentParser()
    plugin.register_cli_args(parser, "executor")
    settings = plugin.get_settings(parser.parse_args(argv))
    plugin.validate_settings(settings)
    return settings


@pytest.fixture
def snakemake_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """(workflow, {rule: job}) of SNAKEFILE, built by Snakemake as for a remote run."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    monkeypatch.chdir(tmp_path)
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(nodes=10),
            snakefile=tmp_path / "Snakefile",
            workdir=tmp_path,
        )
        workflow_api.dag(DAGSettings(forceall=True))
        workflow = workflow_api._workflow
        workflow._prepare_dag(
            forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True
        )
        workflow._build_dag()
        # As DAGApi.execute_workflow does for a remote executor, after parsing.
        if workflow.resource_settings.default_resources is None:
            workflow.resource_settings.default_resources = Resources.default("full")
        yield workflow, {job.name: job for job in workflow.dag.jobs if job.name != "all"}


def render(workflow: Any, job: Any, argv: list[str]) -> tuple[dict[str, Any], Any]:
    """As Executor.render does: facts, memory, manifest; returns the memory choice too."""
    config = build_run_config(parse_settings(argv))
    facts, choice = with_memory(job_facts(job), job, workflow, config.settings.default_mem_mb)
    given = RenderInput(
        run_id="0123456789ab", image=IMAGE, command="python -m snakemake --target-jobs x"
    )
    manifest = render_job(config, facts, given)
    for version in SCHEMA_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
    return manifest, choice


def tolerates(tolerations: list[dict[str, str]], key: str, value: str, effect: str) -> bool:
    """Whether a taint key=value:effect is tolerated (Kubernetes' matching rules)."""
    for t in tolerations:
        if t.get("effect") not in (None, effect) or t.get("key") not in (None, key):
            continue
        if t.get("operator") == "Exists" or t.get("value") == value:
            return True
    return False


def test_upstream_command_line_parses_to_the_same_meaning():
    settings = parse_settings(UPSTREAM_ARGS)
    assert settings.persistent_volumes == [
        PersistentVolume("reference", "/ref"),
        PersistentVolume("scratch.data", "/scratch"),
    ]
    config = build_run_config(settings)
    assert settings.namespace == "pipelines"
    assert settings.cpu_scalar == 0.9
    assert config.service_account == "workload-id"
    assert settings.privileged is True
    assert config.keep_jobs is True  # omit_job_cleanup: no Job is deleted
    # 0.5.1's defaults are ours.
    default = build_run_config(parse_settings([]))
    plain = default.settings
    assert (plain.namespace, plain.cpu_scalar, plain.privileged) == ("default", 0.95, False)
    assert default.service_account is None and default.keep_jobs is False
    assert plain.persistent_volumes == []


def test_persistent_volumes_are_claims_mounted_at_their_paths(snakemake_jobs):
    workflow, jobs = snakemake_jobs
    manifest, _ = render(workflow, jobs["plain"], UPSTREAM_ARGS)
    pod = manifest["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    # 0.5.1 names the volume after the claim; a dotted claim name is no valid volume name.
    assert pod["volumes"] == [
        {"name": "workdir", "emptyDir": {}},
        {"name": "reference", "persistentVolumeClaim": {"claimName": "reference"}},
        {"name": "pvc-1", "persistentVolumeClaim": {"claimName": "scratch.data"}},
    ]
    assert box["volumeMounts"] == [
        {"name": "workdir", "mountPath": "/workdir"},
        {"name": "reference", "mountPath": "/ref"},
        {"name": "pvc-1", "mountPath": "/scratch"},
    ]


def test_nvidia_job_with_scale_0_renders_as_documented(snakemake_jobs):
    workflow, jobs = snakemake_jobs
    manifest, choice = render(workflow, jobs["nvidia"], UPSTREAM_ARGS)
    assert choice is None  # the rule's own mem_mb
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    assert manifest["metadata"]["namespace"] == "pipelines"
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "workload-id"
    assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "n1-standard-16"}
    # 0.5.1 tolerates the device plugin's taint nvidia.com/gpu=present:NoSchedule.
    assert tolerates(pod["tolerations"], "nvidia.com/gpu", "present", "NoSchedule")
    assert not tolerates(pod["tolerations"], "amd.com/gpu", "present", "NoSchedule")
    (box,) = pod["containers"]
    assert box["name"] == "snakemake"
    assert box["image"] == IMAGE
    assert box["command"] + box["args"] == ["/bin/sh", "-c", "python -m snakemake --target-jobs x"]
    assert box["workingDir"] == "/workdir"
    assert box["securityContext"]["privileged"] is True
    # scale=0: limits equal to the requests, CPU limit = threads (unscaled), as in 0.5.1.
    assert box["resources"] == {
        "requests": {
            "cpu": "3600m",
            "memory": "4000M",
            "ephemeral-storage": "10000M",
            "nvidia.com/gpu": "1",
        },
        "limits": {
            "cpu": "4000m",
            "memory": "4000M",
            "ephemeral-storage": "10000M",
            "nvidia.com/gpu": "1",
        },
    }


def test_amd_job_with_default_scale_has_no_cpu_limit(snakemake_jobs):
    workflow, jobs = snakemake_jobs
    manifest, _ = render(workflow, jobs["amd"], UPSTREAM_ARGS)
    pod = manifest["spec"]["template"]["spec"]
    assert tolerates(pod["tolerations"], "amd.com/gpu", "present", "NoSchedule")
    assert "nodeSelector" not in pod
    (box,) = pod["containers"]
    assert box["resources"]["requests"] == {"cpu": "1800m", "memory": "2000M", "amd.com/gpu": "2"}
    # Different from 0.5.1 on purpose (docs/executor/migrating.md): a memory limit always,
    # and the GPU limit Kubernetes requires for extended resources; still no CPU limit.
    assert box["resources"]["limits"] == {"memory": "2000M", "amd.com/gpu": "2"}


def test_rule_without_mem_mb_gets_snakemakes_remote_default(snakemake_jobs):
    workflow, jobs = snakemake_jobs
    # Snakemake parsed the rule before it chose the remote defaults: no mem_mb on the job.
    assert "mem_mb" not in dict(jobs["plain"].resources.items())
    manifest, choice = render(workflow, jobs["plain"], ["--kubernetes-default-mem-mb", "777"])
    assert choice.source == SOURCE_SNAKEMAKE
    # min(max(2*input.size_mb, 1000), 8000) with no input
    assert choice.mem_mb == 1000
    (box,) = manifest["spec"]["template"]["spec"]["containers"]
    assert box["resources"]["requests"]["memory"] == "1000M"
    assert box["resources"]["limits"]["memory"] == "1000M"


def test_snakemakes_default_is_evaluated_for_the_job(snakemake_jobs):
    workflow, jobs = snakemake_jobs
    workflow.resource_settings.default_resources = Resources.parse(
        ["mem_mb=1234 + 2 * input.size_mb + attempt"], allow_expressions=True, defaults="full"
    )
    _, choice = render(workflow, jobs["plain"], [])
    assert (choice.source, choice.mem_mb) == (SOURCE_SNAKEMAKE, 1235)


def test_without_a_usable_snakemake_default_the_setting_applies_and_says_why(snakemake_jobs):
    workflow, jobs = snakemake_jobs
    workflow.resource_settings.default_resources = Resources.default("bare")
    manifest, choice = render(workflow, jobs["plain"], ["--kubernetes-default-mem-mb", "777"])
    assert (choice.source, choice.mem_mb) == (SOURCE_SETTING, 777)
    assert "set no mem_mb" in choice.detail
    (box,) = manifest["spec"]["template"]["spec"]["containers"]
    assert box["resources"]["requests"]["memory"] == "777M"
    log = MemoryLog()
    message = log.message("plain", choice)
    assert message is not None
    assert "Rule plain" in message and "777 MB" in message and SOURCE_SETTING in message
    assert log.message("plain", choice) is None  # once per rule and source


def test_a_group_job_without_mem_mb_gets_the_setting():
    group = SimpleNamespace(is_group=lambda: True)
    facts = job_facts_stub(resources={"_cores": 1})
    facts, choice = with_memory(facts, group, SimpleNamespace(), 640)
    assert (choice.source, choice.mem_mb, facts.resources["mem_mb"]) == (SOURCE_SETTING, 640, 640)


def job_facts_stub(resources: dict[str, Any]) -> Any:
    from snakemake_executor_plugin_kubernetes.facts import JobFacts

    return JobFacts(rule="grp", jobid="g-1", attempt=1, threads=1, resources=resources)
