"""The executor driven without Snakemake's scheduler: a stand-in workflow and job, an executor
bound to the local cluster's API server run in process (``api_server``: Job controller and
garbage collector, no node agent, so tests play the scheduler and kubelet through
``ApiDriver``), and status rounds run by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from localcluster.launcher import RunningCluster
from localcluster.testing import ApiDriver
from snakemake_executor_plugin_kubernetes import Executor, ExecutorSettings, common_settings

TOKEN = "tok-7c0ffee-never-printed"
STORAGE_KEY = "c3RvcmFnZS1rZXktbmV2ZXItcHJpbnRlZA=="


@dataclass
class FakeJob:
    name: str
    jobid: int
    attempt: int = 1
    threads: int = 1
    resources: dict[str, Any] = field(default_factory=lambda: {"_cores": 1, "_nodes": 1})
    is_containerized: bool = False
    is_updated: bool = False
    is_local: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)

    def is_group(self) -> bool:
        return False

    @property
    def rules(self) -> list[str]:
        return [self.name]

    def get_target_spec(self) -> list[Any]:
        return []

    def register(self, external_jobid: str | None = None) -> None:
        self.registered.append(external_jobid or "")

    def log_info(self) -> None:
        pass

    def log_error(self, msg: str | None = None, **kwargs: Any) -> None:
        self.errors.append({"msg": msg, **kwargs})


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Callable[[str], None]:
        return lambda message, *a, **k: self.lines.append((level, str(message)))

    def text(self) -> str:
        return "\n".join(message for _, message in self.lines)


class FakeScheduler:
    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.finished: list[str] = []
        self.failed: list[str] = []
        # An error that ends the run fails the test, unless the test expects one.
        self.expect_executor_errors = False
        self.executor_errors: list[Exception] = []

    def submit_callback(self, job: FakeJob) -> None:
        self.submitted.append(job.name)

    def finish_callback(self, job: FakeJob) -> None:
        self.finished.append(job.name)

    def error_callback(self, job: FakeJob) -> None:
        self.failed.append(job.name)

    def executor_error_callback(self, e: Exception) -> None:
        if not self.expect_executor_errors:
            raise AssertionError(f"executor error: {e}")
        self.executor_errors.append(e)


class FakeArgs:
    def general_args(self, executor_common_settings: Any) -> str:
        return "--general-args"

    def precommand(self, executor_common_settings: Any) -> str:
        self.seen_auto_deploy = executor_common_settings.auto_deploy_default_storage_provider
        return "python -m snakemake --deploy-sources az://c/archive.tar.gz abc"

    def envvars(self) -> dict[str, str]:
        return {"E1_TOKEN": TOKEN, "SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY": STORAGE_KEY}


def fake_workflow(settings: ExecutorSettings) -> SimpleNamespace:
    return SimpleNamespace(
        executor_settings=settings,
        remote_execution_settings=SimpleNamespace(
            max_status_checks_per_second=100,
            seconds_between_status_checks=3600,
            jobname="snakejob.{rulename}.{jobid}.sh",
            jobscript=None,
            container_image="snakemake-k8s-azblob:latest",
            immediate_submit=False,
            preemptible_rules=None,
        ),
        storage_settings=SimpleNamespace(shared_fs_usage=set()),
        deployment_settings=SimpleNamespace(deployment_method=set()),
        group_settings=SimpleNamespace(local_groupid="local"),
        resource_settings=SimpleNamespace(cores=4),
        main_snakefile="Snakefile",
        executor_plugin=SimpleNamespace(common_settings=common_settings),
        spawned_job_args_factory=FakeArgs(),
        dag=SimpleNamespace(get_unneeded_temp_files=lambda job: []),
        scheduler=FakeScheduler(),
        resource_scopes=SimpleNamespace(excluded=set()),
    )


@pytest.fixture
def api(api_server: RunningCluster) -> Iterator[ApiDriver]:
    driver = ApiDriver(api_server)
    yield driver
    driver.close()


async def idle_status_loop(self: Executor) -> None:
    """Stands in for the base class's status loop, which would otherwise run rounds of
    its own on every job ending and race the tests' rounds for the same jobs. Real
    Snakemake runs on the local cluster exercise the real loop."""
    while self.wait:
        await asyncio.sleep(0.05)


@pytest.fixture
def make_executor(api: ApiDriver, tmp_path, monkeypatch):
    monkeypatch.setattr(Executor, "_wait_for_jobs", idle_status_loop)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".snakemake").mkdir()
    kubeconfig = api.cluster.kubeconfig
    made: list[Executor] = []

    def make(
        wait_for_creation: bool = True, kubeconfig: Any = kubeconfig, **settings: Any
    ) -> Executor:
        """With ``wait_for_creation``, run_job returns once the pool has created the Job
        (as it did before submission was concurrent), so tests can look at it at once."""
        config = ExecutorSettings(kubeconfig=str(kubeconfig), **settings)
        executor = Executor(fake_workflow(config), Recorder())
        made.append(executor)
        assert executor.watcher.wait_synced(10)
        if wait_for_creation:
            queue_only = executor.run_job

            def run_job_and_wait(job: Any) -> None:
                queue_only(job)
                assert executor.submissions.wait_idle(30), "Job creation did not end"

            executor.run_job = run_job_and_wait
        return executor

    yield make
    for executor in made:
        executor.watcher.stop()


def status_round(executor: Executor) -> list[str]:
    """One status round over the executor's active jobs; returns the still-active names."""

    async def run() -> list[Any]:
        with executor.lock:
            active = list(executor.active_jobs)
            executor.active_jobs.clear()
        still = [info async for info in executor.check_active_jobs(active)]
        with executor.lock:
            executor.active_jobs.extend(still)
        return still

    return [info.external_jobid for info in asyncio.run(run())]


def terminated(code: int, reason: str = "Error") -> list[dict[str, Any]]:
    state = {"terminated": {"exitCode": code, "reason": reason}}
    return [{"name": "snakemake", "state": state}]


def run_pod(api: ApiDriver, job: str, count: int = 1) -> str:
    """Play the scheduler and kubelet: bind the Job's newest pod to node-1 and start it."""
    pod = api.pod_of(job, count)["metadata"]["name"]
    api.bind(pod)
    api.set_pod_status(pod, phase="Running")
    return pod


def finish(api: ApiDriver, job: str, code: int = 0, **status: Any) -> str:
    """Run the Job's pod to its end with exit code ``code``; the Job controller then
    judges the Job (Complete, or Failed by its pod failure policy)."""
    pod = run_pod(api, job)
    phase = "Succeeded" if code == 0 else "Failed"
    reason = "Completed" if code == 0 else "Error"
    api.set_pod_status(pod, phase=phase, containerStatuses=terminated(code, reason), **status)
    return pod


def job_conditions(executor: Executor, name: str) -> list[str]:
    job = executor.watcher.cache.job(name) or {}
    conditions = job.get("status", {}).get("conditions") or []
    return [c["type"] for c in conditions if c["status"] == "True"]


def nothing_left(api: ApiDriver, *kinds: str) -> bool:
    """Deleted Jobs' pods go with the garbage collector, a moment later."""
    return not any(api.names(kind) for kind in kinds)


def writes(api: ApiDriver) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in api.requests() if r["method"] != "GET"]
