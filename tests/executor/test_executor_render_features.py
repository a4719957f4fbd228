"""Rendered manifests for the efficiency report and the job-name prefix, validated strictly."""

from __future__ import annotations

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.efficiency import wrap_command
from snakemake_executor_plugin_kubernetes.naming import is_dns_label, job_name
from support.rendering import FakeJob, container, render, validate


def test_the_container_declares_the_termination_message_file_the_recorder_writes():
    manifest = render()
    validate(manifest)
    box = container(manifest)
    assert box["terminationMessagePath"] == "/dev/termination-log"
    assert box["terminationMessagePolicy"] == "File"
    # The executor wraps the command (see efficiency.wrap_command); its relative message
    # file, from the working directory, is the path the spec declares.
    wrapped = wrap_command("python -m snakemake", box["workingDir"])
    assert "--message-file ../dev/termination-log --" in wrapped


@pytest.mark.parametrize("prefix", ["sm", "team-a", "x", "a" * 20, "0lab"])
def test_a_job_name_prefix_starts_every_job_name(prefix):
    long_rule = FakeJob(name="call_variants_with_a_very_long_rule_name_" * 3, jobid=12345678901)
    for job in (FakeJob(), long_rule):
        manifest = render(job, job_name_prefix=prefix)
        validate(manifest)
        name = manifest["metadata"]["name"]
        assert name.startswith(f"{prefix}-")
        assert is_dns_label(name)


def test_the_default_prefix_keeps_the_names_of_earlier_versions():
    assert job_name("0123456789ab", "align", 7, 1) == job_name(
        "0123456789ab", "align", 7, 1, prefix="sm"
    )
    assert render()["metadata"]["name"].startswith("sm-align-")


@pytest.mark.parametrize("prefix", ["", "Team", "team_a", "-a", "a-", "a.b", "a" * 21])
def test_a_bad_job_name_prefix_is_refused_before_submission(prefix):
    with pytest.raises(WorkflowError) as excinfo:
        render(job_name_prefix=prefix)
    message = str(excinfo.value)
    assert "--kubernetes-job-name-prefix" in message
    assert repr(prefix) in message
    assert "DNS-1123" in message
