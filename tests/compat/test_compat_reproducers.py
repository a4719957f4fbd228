"""The two failures reported in issue 17, each as the smallest workflow that shows it."""

from __future__ import annotations

import pytest
from executor.workflows.cluster_harness import WorkflowRunner

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PIPE = """
rule all:
    input: "counted.txt"

rule produce:
    output: pipe("numbers.pipe")
    shell: "seq 1 100 > {output}"

rule count:
    input: "numbers.pipe"
    output: "counted.txt"
    shell: "wc -l < {input} > {output}"
"""

PARTLY_CONSUMED_TEMP = """
rule all:
    input: "final.txt"

rule split:
    output: temp("used.txt"), temp("unused.txt")
    shell: "echo used > {output[0]}; echo unused > {output[1]}"

rule use:
    input: "used.txt"
    output: "final.txt"
    shell: "cat {input} > {output}"
"""


def blobs(runner: WorkflowRunner) -> dict[str, bytes]:
    container = runner.azurite.service_client().get_container_client(runner.container)
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def test_pipe_group_ends_and_its_fifo_is_never_uploaded(pods: WorkflowRunner) -> None:
    run = pods.run(PIPE, name="pipe")
    assert run.returncode == 0, run.output[-4000:]
    assert blobs(pods) == {"counted.txt": b"100\n"}
    assert run.leftovers == set()


def test_unconsumed_temp_outputs_do_not_fail_the_run(pods: WorkflowRunner) -> None:
    run = pods.run(PARTLY_CONSUMED_TEMP, name="temp")
    assert run.returncode == 0, run.output[-4000:]
    # As locally: both temp files were made, then removed once nothing needed them.
    assert blobs(pods) == {"final.txt": b"used\n"}
    assert "Removing temporary output" in run.output
