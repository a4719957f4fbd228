"""--rerun-incomplete after the run was killed while a job (a pod) was mid-way."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.compat_compare import (
    LOCAL_TIMEOUT_SECONDS,
    local_outputs,
    run_local,
    storage_outputs,
    workflow_files,
    write_workflow,
)
from support.workflows import (
    NAMESPACE,
    ClusterObserver,
    WorkflowRunner,
    cleanup_command,
)

WORKFLOW = Path(__file__).resolve().parent / "workflows" / "incomplete"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PAUSING = ("--config", "pause=600")


def kill_local_run_mid_job(workdir: Path) -> None:
    """Start the workflow locally and SIGKILL Snakemake once the job wrote part of its output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", *PAUSING],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + LOCAL_TIMEOUT_SECONDS
    while not (workdir / "slow" / "done.txt").exists():
        assert time.monotonic() < deadline, "the local job never started"
        assert process.poll() is None, "the local run ended before it could be killed"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_rerun_incomplete_after_a_killed_run_gives_the_same_outputs(
    pods: WorkflowRunner, tmp_path: Path
) -> None:
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    write_workflow(WORKFLOW, local_dir)
    kill_local_run_mid_job(local_dir)
    # What a user does after a killed run: remove its lock.
    assert run_local(local_dir, "--unlock").returncode == 0
    # Locally the partial output is on disk and marked incomplete.
    refused = run_local(local_dir)
    assert refused.returncode != 0 and "incomplete" in refused.stderr.lower()
    rerun = run_local(local_dir, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stderr[-4000:]

    files = workflow_files(WORKFLOW)
    snakefile = files.pop("Snakefile")

    def kill_when_the_pod_runs(observer: ClusterObserver) -> None:
        observer.wait_for_pod("slow", "Running")
        time.sleep(2)  # the job is in its pause
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pods.process.pid, signal.SIGKILL)

    killed = pods.run(
        snakefile, extra_args=PAUSING, while_running=kill_when_the_pod_runs, name="incomplete"
    )
    assert killed.returncode == -signal.SIGKILL
    for run_id in killed.observed.run_ids:  # what a user does after a killed run
        subprocess.run(
            cleanup_command(run_id, NAMESPACE),
            env={**os.environ, "KUBECONFIG": str(pods.kubeconfig)},
            timeout=60,
            check=True,
        )
    # Outputs reach storage only when a job ends: nothing partial is there.
    assert storage_outputs(pods) == {}
    unlocked = pods.run(snakefile, workdir=killed.workdir, extra_args=("--unlock",))
    assert unlocked.returncode == 0, unlocked.output[-4000:]
    again = pods.run(snakefile, workdir=killed.workdir, extra_args=("--rerun-incomplete",))
    assert again.returncode == 0, again.output[-4000:]
    assert (
        storage_outputs(pods)
        == local_outputs(local_dir)
        == {"slow/done.txt": b"partial\ncomplete\n"}
    )
    assert again.leftovers == set()
