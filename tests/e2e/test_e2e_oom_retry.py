"""More memory after an out-of-memory kill: with mem_mb growing with the attempt and
--retries 2, a job killed for memory is resubmitted with the larger request and succeeds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from localcluster.azurite import Azurite
from localcluster.observer import (
    ALL_KINDS,
    ClusterObserver,
    existing_run_ids,
    wait_for_no_leftovers,
)
from support.snakemake_run import run_snakemake

WORKFLOWS = Path(__file__).resolve().parent / "workflows"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_oomkilled_job_is_retried_with_more_memory_and_succeeds(
    tmp_path: Path, azurite: Azurite, blob_container: str, local_pods, kube_api, executor_kubeconfig
) -> None:
    shutil.copy(WORKFLOWS / "oom_retry" / "Snakefile", tmp_path / "Snakefile")
    earlier = existing_run_ids(kube_api)
    with ClusterObserver(kube_api, kinds=ALL_KINDS, everything=True) as recorder:
        result = run_snakemake(
            tmp_path, blob_container, azurite, executor_kubeconfig, "--retries", "2"
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "OOMKilled at 1000 MB; retrying with 2000 MB (attempt 2 of 3)" in output, output[-4000:]

    (run_id,) = recorder.seen.run_ids - earlier
    pods = recorder.seen.of_run("pods", run_id)
    by_memory: dict[str, set[str]] = {}
    for pod in pods:
        request = pod["spec"]["containers"][0]["resources"]["requests"]["memory"]
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                by_memory.setdefault(request, set()).add(terminated["reason"])
    assert by_memory == {"1000M": {"OOMKilled"}, "2000M": {"Completed"}}, by_memory
    assert wait_for_no_leftovers(kube_api, run_id) == []
    container = azurite.service_client().get_container_client(blob_container)
    assert container.download_blob("hog/done.txt").readall() == b"held 48 chunks with mem_mb 2000\n"
