"""Concurrent Job creation against the scripted API: run_job only queues, the pool creates
in run_job order, a 429 pauses the whole pool, a creation that finally fails is that job's
error, every job is created exactly once under faults, and cancel leaves nothing behind."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from localcluster.accounts import rules_without, write_executor_kubeconfig
from snakemake_executor_plugin_kubernetes.client import Backoff
from support.executor_harness import FakeJob, nothing_left
from support.fakeapi import Logged, wait_until

JOBS = "/jobs$"
# The Executor on the scripted API: `server` and `make_executor` come from conftest.py.


def job_posts(api) -> list[str]:
    """Names of the Jobs POSTed, in the order the requests reached the server."""
    return [
        r.body["metadata"]["name"]
        for r in list(api.requests)
        if r.method == "POST" and r.path.endswith("/jobs")
    ]


class HeldPosts:
    """Holds every Job POST at the server until released (the answer is then normal)."""

    def __init__(self, api) -> None:
        self.released = threading.Event()
        self.arrived = 0
        self._original = api.handle
        api.handle = self._handle

    def _handle(self, handler) -> None:
        if handler.command == "POST" and handler.path.endswith("/jobs"):
            self.arrived += 1
            assert self.released.wait(30), "test never released the held POSTs"
        self._original(handler)


def queue_jobs(executor, count: int, rule: str = "step") -> list[FakeJob]:
    jobs = [FakeJob(rule, jobid) for jobid in range(count)]
    for job in jobs:
        executor.run_job(job)
    return jobs


def manifest_names_in_run_job_order(api, executor, jobs: list[FakeJob]) -> list[str]:
    by_jobid = {
        api.get("jobs", name)["metadata"]["labels"]["snakemake.io/jobid"]: name
        for name in api.names("jobs")
    }
    return [by_jobid[str(job.jobid)] for job in jobs]


def test_run_job_only_queues_and_creation_follows_run_job_order(server, make_executor):
    api = server.api
    held = HeldPosts(api)
    executor = make_executor(wait_for_creation=False, submit_workers=1)
    jobs = queue_jobs(executor, 12)
    # Every run_job returned while the first creation is still held at the server.
    assert executor.workflow.scheduler.submitted == []
    assert api.names("jobs") == []
    held.released.set()
    assert executor.submissions.wait_idle(30)
    expected = manifest_names_in_run_job_order(api, executor, jobs)
    assert job_posts(api) == expected, "one worker creates strictly in run_job order"
    assert executor.workflow.scheduler.submitted == ["step"] * 12
    assert [info.external_jobid for info in executor.active_jobs] == expected
    executor.shutdown()


def test_a_pool_of_n_starts_creations_in_run_job_order(server, make_executor):
    api = server.api
    executor = make_executor(wait_for_creation=False, submit_workers=4)
    started: list[str] = []
    handle = executor.submissions._handle

    def record_start(queued) -> None:
        started.append(queued.name)
        handle(queued)

    executor.submissions._handle = record_start
    jobs = queue_jobs(executor, 40)
    assert executor.submissions.wait_idle(30)
    expected = manifest_names_in_run_job_order(api, executor, jobs)
    # Jobs leave the queue in run_job order; up to 4 requests are then in flight at once,
    # so the server may store neighbours out of order (docs/executor/further.md).
    assert started == expected
    assert sorted(job_posts(api)) == sorted(expected)
    assert executor.submissions.counts.started == 40
    assert threading.active_count() < 20, "the pool holds more threads than its size"
    executor.shutdown()


def test_a_429_pauses_the_whole_pool_for_its_retry_after(server, make_executor):
    api = server.api
    executor = make_executor(wait_for_creation=False, submit_workers=4)
    client = executor.client
    gate_sleeps: list[tuple[str, float]] = []
    real_sleep = client._sleep

    def recorded_sleep(seconds: float) -> None:
        gate_sleeps.append((threading.current_thread().name, seconds))
        real_sleep(seconds)

    client._sleep = recorded_sleep
    original = api.handle
    first = threading.Event()
    release_others = threading.Event()
    refused: list[str] = []

    def throttle_first(handler) -> None:
        if handler.command == "POST" and handler.path.endswith("/jobs"):
            if not first.is_set():
                first.set()
                refused.append(threading.current_thread().name)
                body = json.dumps({"kind": "Status", "code": 429, "message": "throttled"})
                handler.send_response(429)
                handler.send_header("Retry-After", "2")
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body.encode())
                return
            # the other first requests are answered only once the 429 has reached the client
            assert release_others.wait(30)
        original(handler)

    api.handle = throttle_first
    queue_jobs(executor, 12)
    wait_until(lambda: client.gate.holds >= 1, "the 429 seen by the client")
    release_others.set()
    assert executor.submissions.wait_idle(60)

    assert len(api.names("jobs")) == 12 and client.gate.holds == 1
    # Only one request was refused, yet every worker waited before its next request.
    waiting_threads = {name for name, seconds in gate_sleeps if seconds > 0}
    assert len(waiting_threads) == 4, gate_sleeps
    assert len(refused) == 1 and api.count("POST", JOBS) == 12  # the log misses the refused
    executor.shutdown()


def test_a_creation_that_finally_fails_is_that_jobs_error(server, make_executor):
    api = server.api
    executor = make_executor(wait_for_creation=False, submit_workers=2)
    executor.client._backoff = Backoff(base=0.01, cap=0.02, max_attempts=3)
    original = api.handle
    refused = "refused-rule"
    attempts: Counter[str] = Counter()  # POSTs per jobid, answered or refused

    def refuse_one_rule(handler) -> None:
        if handler.command == "POST" and handler.path.endswith("/jobs"):
            length = int(handler.headers.get("Content-Length"))
            raw = handler.rfile.read(length)
            labels = json.loads(raw)["metadata"]["labels"]
            attempts[labels["snakemake.io/jobid"]] += 1
            handler.rfile = io.BytesIO(raw)  # read again by the original handler
            if labels["snakemake.io/rule"] == refused:
                status = 500 if labels["snakemake.io/jobid"] == "1" else 422
                return api._status(handler, status, "Invalid" if status == 422 else "Timeout")
        original(handler)

    api.handle = refuse_one_rule
    jobs = [FakeJob("fine", 0), FakeJob(refused, 1), FakeJob(refused, 2), FakeJob("fine", 3)]
    for job in jobs:
        executor.run_job(job)
    assert executor.submissions.wait_idle(30)

    scheduler = executor.workflow.scheduler
    assert scheduler.submitted == ["fine", "fine"]
    assert scheduler.failed == [refused, refused]
    (timed_out,) = jobs[1].errors
    assert "Cannot create Kubernetes Job" in timed_out["msg"]
    assert "500" in timed_out["msg"] and "Timeout (500)" in timed_out["msg"]
    (invalid,) = jobs[2].errors
    assert "422" in invalid["msg"] and "Invalid (422)" in invalid["msg"]
    assert attempts == {"0": 1, "1": 3, "2": 1, "3": 1}, "5xx retried, 422 not"
    executor.shutdown()


def test_every_job_is_created_once_under_5xx_429_and_lost_answers(server, make_executor):
    api = server.api
    executor = make_executor(wait_for_creation=False, submit_workers=8)
    executor.client._backoff = Backoff(base=0.05, cap=0.2)
    api.fail_next("POST", JOBS, 503, count=3)
    api.fail_next("POST", JOBS, 429, count=2, **{"Retry-After": "1"})
    api.fail_next("POST", JOBS, 500, count=3)
    api.fail_next("POST", JOBS, 0, count=2)  # connection dropped before the Job is stored
    original = api.handle
    lost_answers = {"left": 3}

    def store_then_drop(handler) -> None:
        # the Job is stored, but its answer never reaches the client: the retry gets a
        # 409 and the executor reads the Job instead of creating it again
        if handler.command != "POST" or not handler.path.endswith("/jobs"):
            return original(handler)
        raw = handler.rfile.read(int(handler.headers.get("Content-Length")))
        body = json.loads(raw)
        handler.rfile = io.BytesIO(raw)  # read again by the original handler
        with api.lock:
            lose = (
                not any(f.count > 0 for f in api.faults)
                and lost_answers["left"] > 0
                and api.get("jobs", body["metadata"]["name"]) is None  # a first attempt
            )
            if lose:
                lost_answers["left"] -= 1
        if lose:
            with api.lock:
                api.requests.append(Logged("POST", handler.path, {}, body, None))
            api.put("jobs", body, event="ADDED")
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        original(handler)

    api.handle = store_then_drop
    jobs = queue_jobs(executor, 30)
    assert executor.submissions.wait_idle(60)

    names = api.names("jobs")
    assert len(names) == 30
    assert lost_answers["left"] == 0 and not any(f.count > 0 for f in api.faults)
    scheduler = executor.workflow.scheduler
    assert scheduler.failed == [] and len(scheduler.submitted) == 30
    submitted = [info.external_jobid for info in executor.active_jobs]
    assert sorted(submitted) == names, "every job reported submitted exactly once"
    assert all(len(job.registered) == 1 for job in jobs)
    stored = Counter(name for name in job_posts(api))
    assert set(stored) == set(names)
    assert api.count("GET", r"/jobs/") == 3, "one read per lost answer (409 then GET)"
    executor.shutdown()
    assert api.names("jobs") == []


@pytest.mark.parametrize("how", ["cancel", "shutdown"])
def test_cancel_and_shutdown_drop_the_queue_and_leave_nothing_behind(server, make_executor, how):
    api = server.api
    held = HeldPosts(api)
    executor = make_executor(wait_for_creation=False, submit_workers=2)
    queue_jobs(executor, 20)
    wait_until(lambda: held.arrived == 2, "two creations in flight")

    ended = threading.Event()

    def stop() -> None:
        getattr(executor, how)()
        ended.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    wait_until(lambda: executor.stopping.is_set(), "the run stopping")
    time.sleep(0.2)
    assert not ended.is_set(), "returned before the creations in flight ended"
    held.released.set()
    stopper.join(30)
    assert ended.is_set()

    assert api.count("POST", JOBS) == 2, "a queued job was created after the run stopped"
    assert executor.workflow.scheduler.submitted == ["step", "step"]
    assert api.names("jobs") == [] and api.names("secrets") == [] and api.names("pods") == []
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
    # Every worker holds its first job until all jobs are queued behind them.
    release = threading.Event()
    taken: list[str] = []
    handle = executor.submissions._handle

    def held(queued) -> None:
        taken.append(queued.name)
        assert release.wait(30), "test never released the held creations"
        handle(queued)

    executor.submissions._handle = held
    api.control.reset_requests()
    jobs = queue_jobs(executor, 10)
    wait_until(lambda: len(taken) == workers, "every worker holding a job")
    release.set()
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


def test_decoded_objects_share_their_keys_and_short_strings():
    from snakemake_executor_plugin_kubernetes.client import decode_json

    text = json.dumps(
        {"metadata": {"labels": {"snakemake.io/run-id": "a1b2"}, "note": "x" * 200}, "n": [1]}
    )
    first, second = decode_json(text), decode_json(text.encode())
    assert first == second == json.loads(text)
    assert (
        first["metadata"]["labels"]["snakemake.io/run-id"]
        is second["metadata"]["labels"]["snakemake.io/run-id"]
    )
    assert next(iter(first["metadata"]["labels"])) is next(iter(second["metadata"]["labels"]))
    assert first["metadata"]["note"] is not second["metadata"]["note"]  # long: not shared
