"""Run a workflow with Snakemake's local executor and read back what each kind of run made,
so that a run in pods can be compared with it file by file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.workflows import WorkflowRunner

# Uploaded by Snakemake for the pods to deploy the workflow; not an output.
SOURCE_ARCHIVE_PREFIX = "snakemake-workflow-sources."
# The executor keeps failed jobs' pod logs here (the run's diagnostics, not outputs).
EXECUTOR_LOGS_PREFIX = ".snakemake/kubernetes-logs/"
NOT_OUTPUTS = ("Snakefile", "scripts/", ".snakemake/")
LOCAL_TIMEOUT_SECONDS = 300


def workflow_files(folder: Path) -> dict[str, str]:
    """The workflow's Snakefile and scripts, by path relative to its folder."""
    return {
        path.relative_to(folder).as_posix(): path.read_text()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def write_workflow(folder: Path, workdir: Path) -> None:
    for relative, text in workflow_files(folder).items():
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        (workdir / relative).write_text(text)


def start_local(workdir: Path, *args: str) -> subprocess.Popen[str]:
    """Snakemake with its local executor, as a user would start it (in the background, so
    that it can run while the same workflow runs in pods)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_local(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = process.communicate(timeout=LOCAL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_local(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return finish_local(start_local(workdir, *args))


def local_outputs(workdir: Path) -> dict[str, bytes]:
    """Every file the local run left, but the workflow's own files and Snakemake's state."""
    found = {}
    for path in sorted(workdir.rglob("*")):
        relative = path.relative_to(workdir).as_posix()
        if path.is_file() and not relative.startswith(NOT_OUTPUTS):
            found[relative] = path.read_bytes()
    return found


def storage_outputs(runner: WorkflowRunner) -> dict[str, bytes]:
    container = runner.azurite.service_client().get_container_client(runner.container)
    return {
        blob.name: container.download_blob(blob.name).readall()
        for blob in container.list_blobs()
        if not blob.name.startswith((SOURCE_ARCHIVE_PREFIX, EXECUTOR_LOGS_PREFIX))
    }


def executor_logs(runner: WorkflowRunner) -> list[str]:
    """Names of the pod logs the executor stored (for failed jobs)."""
    container = runner.azurite.service_client().get_container_client(runner.container)
    return [blob.name for blob in container.list_blobs(name_starts_with=EXECUTOR_LOGS_PREFIX)]


def comparable(outputs: dict[str, bytes]) -> dict[str, bytes]:
    """Outputs with what legitimately differs between two runs masked: benchmark timings."""
    masked = {}
    for name, content in outputs.items():
        if name.startswith("benchmarks/"):
            content = content.splitlines()[0] if content else b""  # the header only
        masked[name] = content
    return masked


def executed_rules(output: str) -> list[str]:
    """Names of the rules Snakemake started, in the order it printed them."""
    return re.findall(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$", output, flags=re.MULTILINE)


def without_storage_prefix(text: str, container: str) -> str:
    """Snakemake's messages name storage files by query, or (log files in --summary) by
    their local copy; locally by path."""
    text = text.replace(f".snakemake/storage/azblob/{container}/", "")
    return text.replace(f"az://{container}/", "")
