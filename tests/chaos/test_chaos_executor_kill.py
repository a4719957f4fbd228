"""The submitting `snakemake` is killed (SIGKILL) mid-run: its Jobs, Pods and Secret stay.
The cleanup command the run printed at its start removes every one of them, and a rerun
with --rerun-incomplete completes the work, redoing only what was unfinished.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap

import pytest

from localcluster.observer import ClusterObserver
from localcluster.testing import wait_until
from support.chaos import (
    assert_each_job_finished_once,
    finished_jobs,
    run_id_of,
    run_objects,
    secret_leaks,
)
from support.workflows import WorkflowRun, cleanup_command

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

PAIRS = 2
SNAKEFILE = f"""
localrules: all

rule all:
    input:
        expand("slow/{{i}}.txt", i=range({PAIRS})),

rule fast:
    output:
        "fast/{{i}}.txt",
    shell:
        "echo fast-{{wildcards.i}} > {{output}}"

rule slow:
    input:
        "fast/{{i}}.txt",
    output:
        "slow/{{i}}.txt",
    shell:
        "sleep {{config[sleep]}}; cat {{input}} > {{output}}; echo slow >> {{output}}"
"""
# Safety nets against a hang, not performance bounds.
RUN_TIMEOUT = 300
DELETION_TIMEOUT = 60


def start(runner, workdir, name: str, *extra: str) -> tuple[subprocess.Popen, object]:
    log = (workdir.parent / f"{name}.log").open("w")
    process = subprocess.Popen(
        runner.command(PAIRS, "snakemake-k8s-azblob:latest", extra),
        cwd=workdir,
        env=runner.environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, log


def finish(process, log, observer: ClusterObserver, workdir) -> WorkflowRun:
    process.wait(timeout=RUN_TIMEOUT)
    log.close()
    observed = observer.stop()
    return WorkflowRun(
        returncode=process.returncode,
        output=open(log.name).read(),
        workdir=workdir,
        observed=observed,
        leftovers=observer.leftovers(),
        events=observer.events(),
    )


def running_of_rule(observer: ClusterObserver, rule: str) -> int:
    return sum(
        1
        for (kind, _), obj in observer.seen.latest()
        if kind == "Pod"
        and obj["metadata"].get("labels", {}).get("snakemake.io/rule") == rule
        and obj.get("status", {}).get("phase") == "Running"
    )


def test_killed_submitter_cleanup_removes_everything_and_rerun_completes(
    chaos_runner, chaos_cluster, azurite, container, chaos_record, tmp_path
):
    kubeconfig = chaos_cluster.kubeconfig
    workdir = tmp_path / "killed"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))

    observer = ClusterObserver(kubeconfig, "default").start()
    process, log = start(chaos_runner, workdir, "killed", "--config", "sleep=600")
    try:
        # every fast job has finished once all slow ones run: only those are unfinished
        wait_until(
            lambda: running_of_rule(observer, "slow") == PAIRS,
            "every slow pod running",
            RUN_TIMEOUT,
        )
    finally:
        os.kill(process.pid, signal.SIGKILL)
    killed = finish(process, log, observer, workdir)
    assert killed.returncode == -signal.SIGKILL
    run_id = run_id_of(killed.output)
    left = run_objects(kubeconfig, run_id)
    left_kinds = {kind for kind, _ in left}
    assert {"Job", "Pod", "Secret"} <= left_kinds, left

    cleanup = subprocess.run(
        cleanup_command(run_id, "default"),
        env=chaos_runner.environment(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"run {run_id} in namespace default: deleted" in cleanup.stdout
    wait_until(
        lambda: run_objects(kubeconfig, run_id) == [],
        "the run's objects gone",
        DELETION_TIMEOUT,
    )

    unlock = subprocess.run(
        chaos_runner.command(PAIRS, "snakemake-k8s-azblob:latest", ("--unlock",)),
        cwd=workdir,
        env=chaos_runner.environment(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr

    observer = ClusterObserver(kubeconfig, "default").start()
    process, log = start(
        chaos_runner, workdir, "rerun", "--rerun-incomplete", "--config", "sleep=0"
    )
    rerun = finish(process, log, observer, workdir)

    assert rerun.returncode == 0, rerun.output[-5000:]
    assert_each_job_finished_once(rerun.output, "slow", PAIRS)
    rules_rerun = {rule for _, rule in finished_jobs(rerun.output)}
    assert "fast" not in rules_rerun, "finished work was redone"
    blobs = azurite.service_client().get_container_client(container)
    for i in range(PAIRS):
        text = blobs.download_blob(f"slow/{i}.txt").readall().decode()
        assert text.splitlines() == [f"fast-{i}", "slow"]
    assert rerun.leftovers == set()
    leaked = run_objects(kubeconfig, run_id_of(rerun.output))
    assert leaked == []
    secrets = [azurite.account_key, *chaos_runner.secret_env.values()]
    assert secret_leaks(killed, secrets, cleanup=cleanup.stdout + cleanup.stderr) == []
    assert secret_leaks(rerun, secrets) == []
    chaos_record(
        objects_left_by_kill=len(left),
        objects_removed_by_cleanup=len(left),
        jobs_rerun=sum(1 for _, rule in finished_jobs(rerun.output) if rule == "slow"),
        objects_leaked=len(leaked) + len(rerun.leftovers),
        secrets_leaked=0,
    )
