"""Concurrent Job creation against the local cluster's API server (in process, no node
agent): run_job only queues, the pool creates in run_job order, a 429 pauses the whole pool,
a creation that finally fails is that job's error, every job is created exactly once under
faults, and cancel leaves nothing behind. Faults come from the cluster's control API."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from localcluster.accounts import rules_without, write_executor_kubeconfig
from localcluster.testing import ApiDriver, wait_until
from snakemake_executor_plugin_kubernetes.retry import RetryPolicy, ThrottleGate
from support.executor_harness import FakeJob, nothing_left

JOBS = "/jobs$"
MANY = 1000  # uses of a fault meant for every matching request until it is removed
# The Executor on the in-process API server: `api` and `make_executor` come from conftest.py.


def job_posts(api: ApiDriver) -> list[dict[str, Any]]:
    """The Job POSTs, in the order they reached the server."""
    return api.requests("POST", "/jobs")


def posted_names(api: ApiDriver, status: int | None = None) -> list[str]:
    return [
        r["body"]["metadata"]["name"]
        for r in job_posts(api)
        if status is None or r["status"] == status
    ]


def queue_jobs(executor, count: int, rule: str = "step") -> list[FakeJob]:
    jobs = [FakeJob(rule, jobid) for jobid in range(count)]
    for job in jobs:
        executor.run_job(job)
    return jobs


def manifest_names_in_run_job_order(api: ApiDriver, jobs: list[FakeJob]) -> list[str]:
    by_jobid = {
        api.get("jobs", name)["metadata"]["labels"]["snakemake.io/jobid"]: name
        for name in api.names("jobs")
    }
    return [by_jobid[str(job.jobid)] for job in jobs]


def test_run_job_only_queues_and_creation_follows_run_job_order(api, make_executor):
    executor = make_executor(wait_for_creation=False, submit_workers=1)
    api.control.reset_requests()
    api.control.inject_fault("hold", path=JOBS, method="POST", count=MANY)
    jobs = queue_jobs(executor, 12)
    wait_until(lambda: api.control.held_requests() == 1, "the first creation held")
    # Every run_job returned while the first creation is still held at the server.
    assert executor.workflow.scheduler.submitted == []
    assert api.names("jobs") == []
    api.control.release_held()
    assert executor.submissions.wait_idle(30)
    expected = manifest_names_in_run_job_order(api, jobs)
    assert posted_names(api) == expected, "one worker creates strictly in run_job order"
    assert executor.workflow.scheduler.submitted == ["step"] * 12
    assert [info.external_jobid for info in executor.active_jobs] == expected
    executor.shutdown()


def test_a_pool_of_n_starts_creations_in_run_job_order(api, make_executor):
    executor = make_executor(wait_for_creation=False, submit_workers=4)
    api.control.reset_requests()
    started: list[str] = []
    handle = executor.submissions._handle

    def record_start(queued) -> None:
        started.append(queued.name)
        handle(queued)

    executor.submissions._handle = record_start
    jobs = queue_jobs(executor, 40)
    assert executor.submissions.wait_idle(30)
    expected = manifest_names_in_run_job_order(api, jobs)
    # Jobs leave the queue in run_job order; up to 4 requests are then in flight at once,
    # so the server may store neighbours out of order (docs/executor/further.md).
    assert started == expected
    assert sorted(posted_names(api)) == sorted(expected)
    assert executor.submissions.counts.started == 40
    assert threading.active_count() < 30, "the pool holds more threads than its size"
    executor.shutdown()


def test_a_429_pauses_the_whole_pool_for_its_retry_after(api, make_executor):
    executor = make_executor(wait_for_creation=False, submit_workers=4)
    client = executor.client
    # The gate's clock stands still and sleeps are only recorded: the pause is never over,
    # so each worker's next request waits, however slowly this machine gets there.
    client.gate = ThrottleGate(clock=lambda: 0.0)
    gate_sleeps: list[tuple[str, float]] = []
    client._sleep = lambda seconds: gate_sleeps.append((threading.current_thread().name, seconds))
    api.control.reset_requests()
    # The first creation is refused; the others are answered only once the 429 has reached
    # the client.
    api.control.inject_fault(429, path=JOBS, method="POST", retry_after=2)
    api.control.inject_fault("hold", path=JOBS, method="POST", count=MANY)
    queue_jobs(executor, 12)
    wait_until(lambda: client.gate.holds >= 1, "the 429 seen by the client")
    wait_until(lambda: api.control.held_requests() >= 3, "the other creations held")
    api.control.release_held()
    assert executor.submissions.wait_idle(60)

    assert len(api.names("jobs")) == 12 and client.gate.holds == 1
    # Only one request was refused, yet every worker waited, for its Retry-After, before
    # its next request: whole Retry-Afters (the gate's clock stands still, so a worker
    # waits one out before each of its requests); a Job creation sleeps in slices of a
    # second so that a cancel ends its wait.
    waited: dict[str, float] = {}
    for name, seconds in gate_sleeps:
        waited[name] = waited.get(name, 0.0) + seconds
    assert len(waited) == 4, gate_sleeps
    assert all(total >= 2.0 and total % 2.0 == 0 for total in waited.values()), waited
    assert {seconds for _, seconds in gate_sleeps} <= {1.0, 2.0}
    assert sorted(r["status"] for r in job_posts(api)) == [201] * 12 + [429]
    executor.shutdown()


def test_a_creation_that_finally_fails_is_that_jobs_error(api, make_executor):
    executor = make_executor(wait_for_creation=False, submit_workers=1)
    executor.client.retry = RetryPolicy(base=0.01, cap=0.02, max_attempts=3)
    api.control.reset_requests()
    # One worker creates in run_job order: the first creation passes, the second meets 503
    # on each of its 3 attempts, the third a 422 (e.g. an admission webhook's refusal), the
    # fourth passes.
    api.control.inject_fault(503, path=JOBS, method="POST", count=3, after=1)
    api.control.inject_fault(422, path=JOBS, method="POST", after=1)
    refused = "refused-rule"
    jobs = [FakeJob("fine", 0), FakeJob(refused, 1), FakeJob(refused, 2), FakeJob("fine", 3)]
    for job in jobs:
        executor.run_job(job)
    assert executor.submissions.wait_idle(30)

    scheduler = executor.workflow.scheduler
    assert scheduler.submitted == ["fine", "fine"]
    assert scheduler.failed == [refused, refused]
    (unavailable,) = jobs[1].errors
    assert "Cannot create Kubernetes Job" in unavailable["msg"]
    assert "503" in unavailable["msg"]
    (invalid,) = jobs[2].errors
    assert "Cannot create Kubernetes Job" in invalid["msg"] and "422" in invalid["msg"]
    attempts = Counter(
        r["body"]["metadata"]["labels"]["snakemake.io/jobid"] for r in job_posts(api)
    )
    assert attempts == {"0": 1, "1": 3, "2": 1, "3": 1}, "5xx retried, 422 not"
    executor.shutdown()


def test_every_job_is_created_once_under_5xx_429_and_lost_answers(api, make_executor):
    executor = make_executor(wait_for_creation=False, submit_workers=8)
    executor.client.retry = RetryPolicy(base=0.05, cap=0.2)
    api.control.reset_requests()
    control = api.control
    control.inject_fault(503, path=JOBS, method="POST", count=3)
    control.inject_fault(429, path=JOBS, method="POST", count=2, retry_after=1)
    control.inject_fault(500, path=JOBS, method="POST", count=3)
    control.inject_fault("drop", path=JOBS, method="POST", count=2)  # before it is stored
    # Stored, but the answer is lost or a 504: the retry meets 409 and the executor reads
    # the Job instead of creating it again.
    control.inject_fault("drop-response", path=JOBS, method="POST", count=3)
    control.inject_fault(504, path=JOBS, method="POST", count=2, served=True)
    jobs = queue_jobs(executor, 30)
    assert executor.submissions.wait_idle(60)

    names = api.names("jobs")
    assert len(names) == 30
    assert control.faults() == [], "every fault was served"
    scheduler = executor.workflow.scheduler
    assert scheduler.failed == [] and len(scheduler.submitted) == 30
    submitted = [info.external_jobid for info in executor.active_jobs]
    assert sorted(submitted) == names, "every job reported submitted exactly once"
    assert all(len(job.registered) == 1 for job in jobs)
    posts = job_posts(api)
    # A served fault may also hit a repeat that the server refused with 409.
    stored = {
        r["body"]["metadata"]["name"]
        for r in posts
        if r["status"] == 201 or r["fault"] in ("drop-response", "504")
    }
    assert sorted(stored) == names
    conflicts = {r["body"]["metadata"]["name"] for r in posts if r["status"] == 409}
    reads = [r["path"].rsplit("/", 1)[1] for r in api.requests("GET") if "/jobs/" in r["path"]]
    assert len(conflicts) >= 1 and sorted(reads) == sorted(conflicts), "409 then one GET"
    executor.shutdown()
    wait_until(lambda: nothing_left(api, "jobs"), "the run's Jobs removed")


@pytest.mark.parametrize("how", ["cancel", "shutdown"])
def test_cancel_and_shutdown_drop_the_queue_and_leave_nothing_behind(api, make_executor, how):
    executor = make_executor(wait_for_creation=False, submit_workers=2)
    api.control.reset_requests()
    api.control.inject_fault("hold", path=JOBS, method="POST", count=MANY)
    queue_jobs(executor, 20)
    wait_until(lambda: api.control.held_requests() == 2, "two creations in flight")

    ended = threading.Event()

    def stop() -> None:
        getattr(executor, how)()
        ended.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    wait_until(lambda: executor.stopping.is_set(), "the run stopping")
    time.sleep(0.2)
    assert not ended.is_set(), "returned before the creations in flight ended"
    api.control.release_held()
    stopper.join(30)
    assert ended.is_set()

    assert len(job_posts(api)) == 2, "a queued job was created after the run stopped"
    assert executor.workflow.scheduler.submitted == ["step", "step"]
    wait_until(lambda: nothing_left(api, "jobs", "secrets", "pods"), "nothing left behind")
    assert "18 queued jobs were not submitted" in executor.logger.text()
    with pytest.raises(RuntimeError):
        executor.run_job(FakeJob("late", 99))


def account_that_may_not_create_jobs(api, tmp_path: Path) -> tuple[str, Path]:
    """A fresh namespace whose executor account has the documented Role but 'create jobs'."""
    namespace = f"refuse-{uuid.uuid4().hex[:8]}"
    admin = Path(api.cluster.kubeconfig)
    target = tmp_path / "refused.kubeconfig"
    rules = rules_without("jobs", "create")
    return namespace, write_executor_kubeconfig(admin, target, namespace, rules=rules)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_permanent_refusal_of_job_creation_ends_the_run_at_once(
    api, make_executor, tmp_path, workers
):
    namespace, kubeconfig = account_that_may_not_create_jobs(api, tmp_path)
    executor = make_executor(
        wait_for_creation=False, kubeconfig=kubeconfig, namespace=namespace, submit_workers=workers
    )
    scheduler = executor.workflow.scheduler
    scheduler.expect_executor_errors = True
    api.control.reset_requests()
    # Every worker's first creation waits at the server until all jobs are queued behind them.
    api.control.inject_fault("hold", path=JOBS, method="POST", count=MANY)
    jobs = queue_jobs(executor, 10)
    wait_until(lambda: api.control.held_requests() == workers, "every worker's creation held")
    api.control.release_held()
    assert executor.submissions.wait_idle(30)
    late = FakeJob("late", 99)
    executor.run_job(late)  # Snakemake may hand out a job before it sees the error

    # One error ends the run; it names the verb, the resource, the namespace and the check.
    (error,) = scheduler.executor_errors
    assert f"may not create jobs (API group batch) in namespace {namespace}" in str(error)
    assert f"kubectl auth can-i create jobs.batch -n {namespace}" in str(error)
    # Every job is reported failed once, none submitted; only the held creations were sent.
    assert scheduler.submitted == []
    assert sorted(scheduler.failed) == ["late"] + ["step"] * 10
    for job in [*jobs, late]:
        (reported,) = job.errors
        assert "was not submitted: the run ends" in reported["msg"], reported
    assert api.control.count_requests("POST", "/jobs$") == workers
    assert api.control.count_requests("POST", "/secrets$") == 0
    executor.shutdown()
    assert nothing_left(api, "jobs", "pods", "secrets")


def test_a_job_whose_handling_crashes_is_reported_not_lost():
    from snakemake_executor_plugin_kubernetes.submission import SubmissionPool

    handled: list[int] = []
    crashed: list[tuple[int, str]] = []

    def handle(item: int) -> None:
        if item == 3:
            raise KeyError("boom")
        handled.append(item)

    pool = SubmissionPool(2, handle, lambda item, error: crashed.append((item, repr(error))))
    for item in range(6):
        pool.submit(item)
    assert pool.wait_idle(30)
    assert sorted(handled) == [0, 1, 2, 4, 5]
    assert crashed == [(3, "KeyError('boom')")]
    assert pool.counts.done == 6 and pool.pending == 0
    assert pool.close(cancel_queued=True) == []
    with pytest.raises(ValueError):
        SubmissionPool(0, handle, lambda item, error: None)


def test_a_full_queue_holds_run_job_back_until_a_worker_takes_a_job():
    from snakemake_executor_plugin_kubernetes.submission import SubmissionPool

    release = threading.Event()
    pool = SubmissionPool(1, lambda item: release.wait(30), lambda i, e: None, max_queued=2)
    for item in range(3):  # one taken by the worker, two waiting
        pool.submit(item)
    wait_until(lambda: pool.counts.started == 1, "the first job taken")
    fourth = threading.Thread(target=pool.submit, args=(3,))
    fourth.start()
    fourth.join(0.5)
    assert fourth.is_alive(), "a fourth job was queued beyond max_queued"
    release.set()
    fourth.join(30)
    assert not fourth.is_alive()
    assert pool.wait_idle(30) and pool.counts.done == 4
