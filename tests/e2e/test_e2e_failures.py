"""How the reference scenario fails: a job that runs out of memory, and an input that is not in
storage. Both must say what went wrong in the user's terms and leave nothing behind."""

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
from support.tutorial import SMALL_SIMULATION, prepare

WORKFLOWS = Path(__file__).resolve().parent / "workflows"

# Generous: the first test also pays for building the job image when it is not cached yet.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def error_block(output: str, rule: str) -> str:
    """Snakemake's "Error in rule RULE:" paragraph (up to the next blank line)."""
    start = output.find(f"Error in rule {rule}:")
    assert start >= 0, f"no 'Error in rule {rule}:' in the output:\n{output[-4000:]}"
    end = output.find("\n\n", start)
    return output[start : end if end >= 0 else len(output)]


def test_rule_over_its_memory_is_reported_oomkilled_by_name(
    tmp_path: Path, azurite: Azurite, blob_container: str, local_pods, kube_api, executor_kubeconfig
) -> None:
    shutil.copy(WORKFLOWS / "oom" / "Snakefile", tmp_path / "Snakefile")
    earlier = existing_run_ids(kube_api)
    with ClusterObserver(kube_api, kinds=ALL_KINDS, everything=True) as recorder:
        result = run_snakemake(tmp_path, blob_container, azurite, executor_kubeconfig)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "OOMKilled" in error_block(output, "hog_memory"), output[-4000:]
    run_ids = recorder.seen.run_ids - earlier
    assert len(run_ids) == 1
    run_id = run_ids.pop()
    pods = recorder.seen.of_run("pods", run_id)
    reasons = {
        status["state"]["terminated"]["reason"]
        for pod in pods
        for status in pod.get("status", {}).get("containerStatuses") or []
        if status.get("state", {}).get("terminated")
    }
    assert "OOMKilled" in reasons
    assert wait_for_no_leftovers(kube_api, run_id) == []
    blobs = [
        b.name for b in azurite.service_client().get_container_client(blob_container).list_blobs()
    ]
    # Nothing but the failed job's pod log, kept where it outlives the submitting machine.
    assert len(blobs) == 1, f"a failed run left blobs: {blobs}"
    assert blobs[0].startswith(f".snakemake/kubernetes-logs/{run_id}/sm-hog-memory-"), blobs


def test_input_missing_from_storage_is_named(
    tmp_path: Path, azurite: Azurite, blob_container: str, local_pods, kube_api, executor_kubeconfig
) -> None:
    setup = prepare(
        tmp_path,
        blob_container,
        azurite.blob_endpoint,
        azurite.account_key,
        executor_kubeconfig,
        SMALL_SIMULATION,
    )
    container = azurite.service_client().get_container_client(blob_container)
    container.delete_blob("data/samples/B.fastq")
    before = {b.name for b in container.list_blobs()}
    earlier = existing_run_ids(kube_api)
    with ClusterObserver(kube_api, kinds=ALL_KINDS, everything=True) as recorder:
        result = setup.run(["--seconds-between-status-checks", "2"])
    assert result.returncode != 0, result.output[-4000:]
    assert "MissingInputException" in result.output or "Missing input" in result.output
    assert "bwa_map" in result.output
    assert "data/samples/B.fastq" in result.output
    # Nothing was started for a workflow that cannot run, and storage is as it was.
    assert recorder.seen.run_ids - earlier == set()
    assert {b.name for b in container.list_blobs()} == before
