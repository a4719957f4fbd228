"""N jobs at --jobs J while the API server throttles, fails and drops requests, both while
Jobs are being created and while the executor watches them; watches are ended early and
answered with 410 Gone. Every Job must be created exactly once (counted per Job name in the
API server's request log, also when a creation was applied but its answer lost), every job
reported finished exactly once and never as failed, every output must exist, and no Job,
Pod or Secret of the run may be left behind.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from support import workflows
from support.chaos import (
    EXECUTOR_USER_AGENT,
    JOBS_PATH,
    PODS_PATH,
    assert_each_job_created_once,
    assert_each_job_finished_once,
    assert_outputs,
    fan_out_snakefile,
    request_figures,
    run_id_of,
    run_objects,
    scaled,
    secret_leaks,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

# CHAOS_JOBS / CHAOS_PARALLEL / CHAOS_BURSTS pick sizes in between (see docs/reliability.md).
JOB_COUNT = int(os.environ.get("CHAOS_JOBS") or scaled(12, 2000))
PARALLEL = int(os.environ.get("CHAOS_PARALLEL") or scaled(6, 200))
BURSTS = int(os.environ.get("CHAOS_BURSTS") or scaled(2, 10))


class FaultBursts:
    """Faults in bursts. Submission faults (429 with Retry-After, 500, 503, dropped
    connection on Job creation; a creation applied but answered by a dropped connection or
    a 500) go in before the run, so the first Job creation meets them, and again mid-run
    while at least 2*J Jobs remain to be created. Watch faults (failing lists and watches,
    every watch ended, the next one answered 410 Gone) go in each time another slice of
    the Jobs was created."""

    def __init__(self, control, job_count: int, parallel: int, bursts: int) -> None:
        self.control = control
        self.thresholds = [job_count * (k + 1) // (bursts + 1) for k in range(bursts)]
        self.last_submission_threshold = job_count - 2 * parallel
        self.injected = 0
        self.watch_interruptions = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, observer) -> None:
        self._thread = threading.Thread(target=self._loop, args=(observer,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _inject(
        self, action: str | int, path: str, method: str, count: int = 1, served: bool = False
    ) -> None:
        self.control.inject_fault(
            action, path, method=method, count=count, retry_after=1, served=served
        )
        self.injected += count

    def submission_burst(self) -> None:
        self._inject(429, JOBS_PATH, "POST", count=3)
        self._inject(500, JOBS_PATH, "POST")
        self._inject(503, JOBS_PATH, "POST")
        self._inject("drop", JOBS_PATH, "POST")
        # The Job is created, but its answer is lost or an error: the repeat must meet
        # 409 AlreadyExists and read the Job, not create a second one.
        self._inject("drop-response", JOBS_PATH, "POST")
        self._inject(500, JOBS_PATH, "POST", served=True)

    def watch_burst(self) -> None:
        self._inject(500, PODS_PATH, "GET")
        self._inject(503, JOBS_PATH, "GET")
        self._inject("drop", PODS_PATH, "GET")
        self.control.close_watches()
        self.control.expire_next_watch()
        self.control.close_watches()
        self.watch_interruptions += 3

    def _loop(self, observer) -> None:
        pending = list(self.thresholds)
        while pending and not self._stop.is_set():
            created = self._created(observer)
            if created >= pending[0]:
                threshold = pending.pop(0)
                self.watch_burst()
                if threshold <= self.last_submission_threshold:
                    self._wait_until_used_up(observer)
                    self.submission_burst()
            time.sleep(0.2)

    @staticmethod
    def _created(observer) -> int:
        return len(observer.seen.of_kind("Job"))

    def _pending_submission_faults(self) -> int:
        return sum(f["remaining"] for f in self.control.faults() if f["method"] == "POST")

    def _wait_until_used_up(self, observer) -> None:
        """Until the previous submission faults were served and a Job was created after
        that: the request that met the last one has left its retry loop, so each burst is
        counted against a request of its own."""
        while self._pending_submission_faults() and not self._stop.wait(0.2):
            pass
        used_up_at = self._created(observer)
        while self._created(observer) <= used_up_at and not self._stop.wait(0.2):
            pass


# Above the run's own hang guard (10 s per job), so that guard reports first.
@pytest.mark.timeout(max(900, 12 * JOB_COUNT + 600))
def test_many_jobs_under_api_faults_finish_once_and_leave_nothing(
    chaos_runner, chaos_control, chaos_cluster, azurite, container, monkeypatch, chaos_record
):
    # A safety net against a hang at full size, not a performance bound.
    monkeypatch.setattr(workflows, "RUN_TIMEOUT_SECONDS", max(300, 10 * JOB_COUNT))
    bursts = FaultBursts(chaos_control, JOB_COUNT, PARALLEL, BURSTS)
    bursts.submission_burst()
    try:
        run = chaos_runner.run(
            fan_out_snakefile(JOB_COUNT),
            jobs=PARALLEL,
            # Pods beyond the nodes' slots wait Pending for one to free, under the default
            # --kubernetes-unschedulable-timeout: a queue that moves is not a failure.
            extra_args=(
                "--kubernetes-cpu-scalar",
                "0.01",
                # only the two capped nodes, whatever other scenarios added
                "--kubernetes-node-selector",
                "chaos.test/pool=main",
            ),
            while_running=bursts.start,
            name="load",
        )
    finally:
        bursts.stop()

    assert run.returncode == 0, run.output[-5000:]
    pending_faults = chaos_control.faults()
    assert pending_faults == [], f"faults never reached the executor: {pending_faults}"
    assert_each_job_finished_once(run.output, "work", JOB_COUNT)
    assert_outputs(azurite, container, "work", JOB_COUNT)
    run_id = run_id_of(run.output)
    figures = request_figures(chaos_control.requests(user_agent=EXECUTOR_USER_AGENT))
    # every fault was served to the executor (and so retried) and each Job created once
    assert figures["faults_served"] == bursts.injected, figures
    job_names = {job["metadata"]["name"] for job in run.observed.of_kind("Job")}
    assert len(job_names) == JOB_COUNT
    assert_each_job_created_once(chaos_control.requests(user_agent=EXECUTOR_USER_AGENT), job_names)
    assert "Error in rule" not in run.output, run.output[-5000:]
    assert run.leftovers == set()
    leaked = run_objects(chaos_cluster.kubeconfig, run_id)
    assert leaked == []
    assert run.observed.pod_logs, "no pod log was read: the secret scan would prove nothing"
    secrets = [azurite.account_key, *chaos_runner.secret_env.values()]
    assert secret_leaks(run, secrets) == []
    chaos_record(
        jobs=JOB_COUNT,
        parallel=PARALLEL,
        jobs_completed=len(run.observed.of_kind("Job")),
        faults_injected=bursts.injected,
        retries=figures["faults_served"],
        watch_interruptions=bursts.watch_interruptions,
        api_requests=figures["api_requests"],
        pod_logs_scanned=len(run.observed.pod_logs),
        objects_leaked=len(leaked) + len(run.leftovers),
        secrets_leaked=0,
    )
