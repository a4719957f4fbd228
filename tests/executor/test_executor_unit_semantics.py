"""Corrections to the pod's Snakemake arguments, and the notice of a retry after OOMKilled."""

from __future__ import annotations

import pytest
from snakemake_interface_executor_plugins.utils import format_cli_arg, join_cli_args

from snakemake_executor_plugin_kubernetes.jobargs import (
    ArgumentsChanged,
    corrected_job_args,
    group_cores,
)
from snakemake_executor_plugin_kubernetes.memory_retries import (
    MemoryKills,
    is_memory_kill,
    requested_mem_mb,
)
from support import rendering

UNNEEDED = ["az://c/unused.txt", "az://c/other one.txt"]


def job_args(cores: object, unneeded: list[str]) -> str:
    """Arguments formatted as snakemake-interface-executor-plugins formats them."""
    return join_cli_args(
        [
            format_cli_arg("--target-jobs", ["split:"]),
            format_cli_arg("--cores", cores),
            format_cli_arg("--attempt", 1),
            format_cli_arg("--unneeded-temp-files", unneeded, skip=not unneeded),
        ]
    )


def test_single_job_keeps_its_unneeded_temp_outputs_for_upload() -> None:
    args = job_args("all", UNNEEDED)
    corrected = corrected_job_args(
        args, is_group=False, given_cores="all", resources={}, unneeded_temp_files=UNNEEDED
    )
    assert "--unneeded-temp-files" not in corrected
    assert "unused.txt" not in corrected
    assert format_cli_arg("--cores", "all") in corrected and "--attempt 1" in corrected


def test_group_job_gets_the_cores_snakemake_computed_for_it() -> None:
    args = job_args("all", UNNEEDED)
    corrected = corrected_job_args(
        args,
        is_group=True,
        given_cores="all",
        resources={"_cores": 3, "mem_mb": 100},
        unneeded_temp_files=UNNEEDED,
    )
    assert "--cores 3" in corrected and "all" not in corrected
    # A group's unneeded temp files stay unneeded: Snakemake exempts them from its check.
    assert format_cli_arg("--unneeded-temp-files", UNNEEDED) in corrected


def test_nothing_to_correct_leaves_arguments_alone() -> None:
    args = job_args(8, [])
    assert (
        corrected_job_args(
            args, is_group=False, given_cores=8, resources={}, unneeded_temp_files=[]
        )
        == args
    )


def test_an_unexpected_format_is_reported_not_guessed() -> None:
    with pytest.raises(ArgumentsChanged):
        corrected_job_args(
            "--cores 2",
            is_group=True,
            given_cores="all",
            resources={"_cores": 2},
            unneeded_temp_files=[],
        )


@pytest.mark.parametrize(
    ("resources", "expected"),
    [({"_cores": 2}, 2), ({"_cores": 2.5}, 3), ({}, None), ({"_cores": True}, None)],
)
def test_group_cores(resources: dict, expected: int | None) -> None:
    assert group_cores(resources) == expected


def test_retry_after_memory_kill_names_both_sizes_and_the_attempt() -> None:
    kills = MemoryKills()
    message = "Kubernetes Job j failed: OOMKilled: the container exceeded its memory limit 1000M"
    assert is_memory_kill(message)
    assert not is_memory_kill("Kubernetes Job j failed: Error (exit code 1)")
    kills.record("hog/3", 1000)
    assert kills.retry_notice("other/4", 1000, attempt=2, attempts=3) is None
    assert (
        kills.retry_notice("hog/3", 2000, attempt=2, attempts=3)
        == "OOMKilled at 1000 MB; retrying with 2000 MB (attempt 2 of 3)"
    )
    # Said once, at the resubmission that follows the kill.
    assert kills.retry_notice("hog/3", 2000, attempt=2, attempts=3) is None


def test_retry_with_the_same_memory_is_called_out() -> None:
    kills = MemoryKills()
    kills.record("hog/3", 1000)
    notice = kills.retry_notice("hog/3", 1000, attempt=2, attempts=2)
    assert notice is not None
    assert notice.startswith("OOMKilled at 1000 MB; retrying with 1000 MB (attempt 2 of 2)")
    assert "function of attempt" in notice


def test_the_killed_size_is_read_from_the_rendered_container_not_a_sidecar() -> None:
    manifest = rendering.render(rendering.FakeJob(resources={"mem_mb": 3000}))
    assert requested_mem_mb(manifest) == 3000
    containers = manifest["spec"]["template"]["spec"]["containers"]
    sidecar = {"name": "istio-proxy", "resources": {"requests": {"memory": "128Mi"}}}
    containers.insert(0, sidecar)
    assert requested_mem_mb(manifest) == 3000
    del containers[1]["resources"]
    assert requested_mem_mb(manifest) is None
