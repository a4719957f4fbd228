"""Run Snakemake workflows with `--executor kubernetes` on the test cluster, and watch them.

The cluster is the session's `local_cluster` (or a real cluster when KUBECONFIG points at
one); storage is the session's Azurite. Each run is a `python -m snakemake` subprocess, as a
user would start it. While it runs, a `ClusterObserver` polls the run's Jobs, Pods and
Secrets (by the `snakemake.io/run-id` label) with its own user agent, so the requests it
makes can be told apart from the executor's in the local cluster's request log.
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
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from localcluster.azurite import Azurite

RUN_ID_LABEL = "snakemake.io/run-id"
RULE_LABEL = "snakemake.io/rule"
OBSERVER_USER_AGENT = "e2-test-observer"
BASE_IMAGE = "snakemake-k8s-azblob:latest"
NAMESPACE = os.environ.get("E2_TEST_NAMESPACE", "default")
# A safety net against a hanging run, not a performance bound: a hang fails the test.
RUN_TIMEOUT_SECONDS = 240


def kubernetes_api_client(kubeconfig: Path, user_agent: str):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.retries = 0
    api_client = client.ApiClient(configuration)
    api_client.user_agent = user_agent
    return api_client


@dataclass
class ObservedRun:
    """Everything seen of a run's Kubernetes objects while it ran."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pod_logs: dict[str, str] = field(default_factory=dict)
    pod_phases: dict[str, list[str]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for (k, _), obj in self.objects.items() if k == kind]

    @property
    def run_ids(self) -> set[str]:
        return {
            obj["metadata"]["labels"][RUN_ID_LABEL]
            for obj in self.objects.values()
            if RUN_ID_LABEL in (obj["metadata"].get("labels") or {})
        }


class ClusterObserver:
    """Polls (LIST, no watch) the run's objects so watch-level faults only hit the executor."""

    kinds = ("Job", "Pod", "Secret")

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        cluster_wide_paths: bool = False,
        interval: float = 0.3,
    ) -> None:
        from kubernetes import client

        self.api_client = kubernetes_api_client(kubeconfig, OBSERVER_USER_AGENT)
        self.core = client.CoreV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.cluster_wide_paths = cluster_wide_paths
        self.interval = interval
        self.baseline = self.labelled_names()
        self.seen = ObservedRun()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="cluster-observer", daemon=True)

    def _list(self, kind: str) -> list[dict[str, Any]]:
        if self.cluster_wide_paths:
            # /api/v1/pods etc.: fault rules aimed at the namespaced paths the executor
            # uses then never hit the observer.
            lister = {
                "Job": self.batch.list_job_for_all_namespaces,
                "Pod": self.core.list_pod_for_all_namespaces,
                "Secret": self.core.list_secret_for_all_namespaces,
            }[kind]
            result = lister(
                label_selector=RUN_ID_LABEL,
                field_selector=f"metadata.namespace={self.namespace}",
                _preload_content=False,
            )
        else:
            lister = {
                "Job": self.batch.list_namespaced_job,
                "Pod": self.core.list_namespaced_pod,
                "Secret": self.core.list_namespaced_secret,
            }[kind]
            result = lister(self.namespace, label_selector=RUN_ID_LABEL, _preload_content=False)
        return json.loads(result.data)["items"]

    def labelled_names(self) -> set[tuple[str, str]]:
        """(kind, name) of every object in the namespace that carries a run-id label."""
        return {(kind, obj["metadata"]["name"]) for kind in self.kinds for obj in self._list(kind)}

    def leftovers(self) -> set[tuple[str, str]]:
        return self.labelled_names() - self.baseline

    def start(self) -> ClusterObserver:
        self._thread.start()
        return self

    def stop(self) -> ObservedRun:
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll_once()
        return self.seen

    def _loop(self) -> None:
        while not self._stop.is_set():
            # The cluster may be injecting faults: keep observing.
            with contextlib.suppress(Exception):
                self.poll_once()
            self._stop.wait(self.interval)

    def poll_once(self) -> None:
        for kind in self.kinds:
            for obj in self._list(kind):
                name = obj["metadata"]["name"]
                if (kind, name) in self.baseline:
                    continue
                with self._lock:
                    self.seen.objects[(kind, name)] = obj
                if kind == "Pod":
                    self._record_pod(obj)

    def _record_pod(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase", "")
        phases = self.seen.pod_phases.setdefault(name, [])
        if not phases or phases[-1] != phase:
            phases.append(phase)
        if phase in {"Succeeded", "Failed"} and name not in self.seen.pod_logs:
            # The pod may be gone before its log could be read, or never have started.
            with contextlib.suppress(Exception):
                self.seen.pod_logs[name] = self.core.read_namespaced_pod_log(name, self.namespace)

    def wait_for_pod(
        self, rule: str, phase: str = "Running", timeout: float = 120
    ) -> dict[str, Any]:
        """The first pod of `rule` seen in `phase` (waits; fails the test on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for (kind, _), obj in self.seen.objects.items():
                    labels = obj["metadata"].get("labels") or {}
                    if (
                        kind == "Pod"
                        and labels.get(RULE_LABEL) == rule
                        and (obj.get("status") or {}).get("phase") == phase
                    ):
                        return obj
            time.sleep(0.1)
        pytest.fail(f"no pod of rule {rule!r} reached phase {phase} within {timeout} s")

    def events(self) -> list[dict[str, Any]]:
        response = self.core.list_namespaced_event(self.namespace, _preload_content=False)
        return json.loads(response.data)["items"]


@dataclass
class WorkflowRun:
    returncode: int
    output: str
    workdir: Path
    observed: ObservedRun
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


def stop_and_clean_up(process: subprocess.Popen, observer: ClusterObserver) -> None:
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
            env={**os.environ, "KUBECONFIG": str(observer.kubeconfig)},
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
    # On the local cluster (which has a control API) the observer reads cluster-wide paths.
    local: bool = False
    # Seconds between the observer's lists; each lists every Job, Pod and Secret of the run.
    observe_interval: float = 0.3
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
        observer = ClusterObserver(
            self.kubeconfig, self.namespace, self.local, interval=self.observe_interval
        ).start()
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
                stop_and_clean_up(process, observer)
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
