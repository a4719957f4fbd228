"""Run Snakemake workflows with `--executor kubernetes` on the test cluster, and watch them.

The cluster is the session's `local_cluster` (or a real cluster when KUBECONFIG points at
one); storage is the session's Azurite. Each run is a `python -m snakemake` subprocess, as a
user would start it. While it runs, localcluster's `ClusterObserver` watches the run's Jobs,
Pods and Secrets (by the `snakemake.io/run-id` label) with its own user agent, which the local
cluster's fault injection passes by and tests tell apart in its request log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.azurite import Azurite
from localcluster.observer import ClusterObserver, Observation

BASE_IMAGE = "snakemake-k8s-azblob:latest"
NAMESPACE = os.environ.get("E2_TEST_NAMESPACE", "default")
# A safety net against a hanging run, not a performance bound: a hang fails the test.
RUN_TIMEOUT_SECONDS = 240


@dataclass
class WorkflowRun:
    returncode: int
    output: str
    workdir: Path
    observed: Observation
    leftovers: set[tuple[str, str]]
    events: list[dict[str, Any]]

    def saved_logs(self) -> dict[str, str]:
        folder = self.workdir / ".snakemake" / "logs"
        if not folder.exists():
            return {}
        return {
            str(path.relative_to(self.workdir)): path.read_text(errors="replace")
            for path in folder.rglob("*")
            if path.is_file()
        }


def cleanup_command(run_id: str, namespace: str) -> list[str]:
    """The executor's documented cleanup command for one run."""
    return [
        sys.executable,
        "-m",
        "snakemake_executor_plugin_kubernetes",
        "cleanup",
        "--run-id",
        run_id,
        "--namespace",
        namespace,
    ]


def stop_and_clean_up(
    process: subprocess.Popen, observer: ClusterObserver, kubeconfig: Path
) -> None:
    """After a hang: interrupt Snakemake like Ctrl-C, then kill it, then remove what its run
    left with the executor's cleanup command, so that later tests get a clean namespace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    observed = observer.stop()
    for run_id in observed.run_ids:
        subprocess.run(
            cleanup_command(run_id, observer.namespace),
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            timeout=60,
            check=False,
        )


@dataclass
class WorkflowRunner:
    """Runs a Snakefile with the Kubernetes executor and Azure Blob default storage."""

    kubeconfig: Path
    azurite: Azurite
    container: str
    tmp_path: Path
    secret_env: dict[str, str]
    # On the local cluster (which has a control API and a node agent's logs).
    local: bool = False
    # Snakemake's own kubeconfig: the executor's least-privilege ServiceAccount (the observer
    # keeps `kubeconfig`, an admin, to see everything); None: Snakemake uses `kubeconfig`.
    executor_kubeconfig: Path | None = None
    namespace: str = NAMESPACE
    process: subprocess.Popen | None = None

    def command(self, jobs: int, image: str, extra_args: tuple[str, ...]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "snakemake",
            "--executor",
            "kubernetes",
            "--default-storage-provider",
            "azblob",
            "--default-storage-prefix",
            f"az://{self.container}",
            "--storage-azblob-endpoint-url",
            self.azurite.blob_endpoint,
            "--container-image",
            image,
            "--kubernetes-namespace",
            self.namespace,
            "--jobs",
            str(jobs),
            "--seconds-between-status-checks",
            "1",
            "--envvars",
            *self.secret_env,
            *extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SNAKEMAKE_", "AZURE_", "AZ_BLOB_"))
        }
        env.update(self.secret_env)
        env["KUBECONFIG"] = str(self.executor_kubeconfig or self.kubeconfig)
        env["SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY"] = self.azurite.account_key
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(
        self,
        snakefile: str,
        *,
        jobs: int = 4,
        image: str = BASE_IMAGE,
        extra_args: tuple[str, ...] = (),
        while_running: Callable[[ClusterObserver], None] | None = None,
        name: str = "wf",
        workdir: Path | None = None,
        files: dict[str, str] | None = None,
    ) -> WorkflowRun:
        """Run ``snakefile`` in a new folder, or in ``workdir`` to continue an earlier run
        there (its .snakemake metadata); ``files`` are written next to the Snakefile (e.g.
        scripts). While it runs, ``self.process`` is the Snakemake process."""
        if workdir is None:
            workdir = self.tmp_path / f"{name}-{uuid.uuid4().hex[:8]}"
            workdir.mkdir()
        (workdir / "Snakefile").write_text(textwrap.dedent(snakefile))
        for relative, text in (files or {}).items():
            (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
            (workdir / relative).write_text(text)
        observer = ClusterObserver(self.kubeconfig, self.namespace).start()
        log_file = workdir.parent / f"{workdir.name}.log"
        with log_file.open("w") as log:
            self.process = process = subprocess.Popen(
                self.command(jobs, image, extra_args),
                cwd=workdir,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                if while_running is not None:
                    while_running(observer)
                returncode = process.wait(timeout=RUN_TIMEOUT_SECONDS)
            except BaseException:
                stop_and_clean_up(process, observer, self.kubeconfig)
                raise
        observed = observer.stop()
        output = log_file.read_text(errors="replace")
        return WorkflowRun(
            returncode=returncode,
            output=output,
            workdir=workdir,
            observed=observed,
            leftovers=observer.leftovers(),
            events=observer.events(),
        )


def encodings(value: str) -> list[str]:
    """A secret value as it could appear in text: raw or base64-encoded."""
    return [value, base64.b64encode(value.encode()).decode()]


def places_with_secret(run: WorkflowRun, secrets: list[str]) -> list[str]:
    """Every place outside a Secret's data where one of `secrets` appears."""
    texts: dict[str, str] = {"snakemake output": run.output}
    for (kind, name), obj in run.observed.objects.items():
        shown = {"metadata": obj["metadata"]} if kind == "Secret" else obj
        texts[f"{kind} {name}"] = json.dumps(shown)
    for pod, log in run.observed.pod_logs.items():
        texts[f"log of pod {pod}"] = log
    for event in run.events:
        texts[f"event {event['metadata']['name']}"] = json.dumps(event)
    texts.update({f"file {path}": text for path, text in run.saved_logs().items()})
    needles = [needle for secret in secrets for needle in encodings(secret)]
    return sorted(place for place, text in texts.items() if any(n in text for n in needles))


def secret_values_of_run(run: WorkflowRun) -> set[str]:
    """Decoded values held by the run's Secret(s), as the observer saw them."""
    values: set[str] = set()
    for secret in run.observed.of_kind("Secret"):
        for encoded in (secret.get("data") or {}).values():
            values.add(base64.b64decode(encoded).decode(errors="replace"))
        values.update((secret.get("stringData") or {}).values())
    return values


def paragraphs_mentioning(output: str, *needles: str, max_lines: int = 25) -> list[str]:
    """Short blank-line separated blocks (or single lines) of `output` that contain every
    needle, case-insensitively: an error block names the rule and its reason together."""
    blocks = [block for block in output.split("\n\n") if block.strip()]
    candidates = [b for b in blocks if b.count("\n") < max_lines] + output.splitlines()
    return [c for c in candidates if all(n.lower() in c.lower() for n in needles)]
