"""The batch/v1 Job controller, after the upstream controller's observable behaviour (1.30+).

Creates pods from the template (owned by the Job, labelled with controller-uid/job-name),
counts terminated pods exactly once (pods that vanish before finishing count as failed, as
upstream's job-tracking finalizer ensures), applies podFailurePolicy (FailJob/Ignore/Count),
backoffLimit with exponential re-creation delay, activeDeadlineSeconds, and writes status and
conditions: FailureTarget then Failed, SuccessCriteriaMet then Complete
(https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup).
Finished jobs with ttlSecondsAfterFinished are deleted (Foreground) when it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from localcluster.errors import ApiError
from localcluster.store import DELETED, Store, now_rfc3339

log = logging.getLogger("localcluster.jobs")
COMPONENT = "job-controller"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass
class _Tracking:
    succeeded: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)
    vanished: dict[str, dict[str, Any]] = field(default_factory=dict)
    discarded: set[str] = field(default_factory=set)  # deleted on suspension: not failures
    fail_job_message: str | None = None
    last_failure: float = 0.0


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _new_condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    now = now_rfc3339()
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def _controller_uid(pod: dict[str, Any]) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return ref.get("uid")
    return None


def _exit_codes(pod: dict[str, Any], container: str | None) -> list[tuple[str, int]]:
    codes = []
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is None or (container and status.get("name") != container):
            continue
        codes.append((status.get("name", ""), int(terminated.get("exitCode", 0))))
    return codes


def evaluate_pod_failure_policy(
    policy: dict[str, Any] | None, pod: dict[str, Any]
) -> tuple[str, str] | None:
    """(action, message) of the first matching rule, or None (count as usual)."""
    if not policy:
        return None
    name = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action", "Count")
        on_codes = rule.get("onExitCodes")
        if on_codes:
            values = set(on_codes.get("values") or [])
            for container, code in _exit_codes(pod, on_codes.get("containerName")):
                if code == 0:
                    continue  # successful containers are excluded from the check
                hit = code in values if on_codes.get("operator") == "In" else code not in values
                if hit:
                    return action, (
                        f"Container {container} for pod {name} failed with exit code {code} "
                        f"matching {action} rule at index {index}"
                    )
        for wanted in rule.get("onPodConditions") or []:
            for condition in pod.get("status", {}).get("conditions") or []:
                if condition.get("type") == wanted.get("type") and condition.get(
                    "status"
                ) == wanted.get("status", "True"):
                    return action, (
                        f"Pod {name} has condition {wanted.get('type')} matching {action} rule "
                        f"at index {index}"
                    )
    return None


class JobController:
    def __init__(
        self, store: Store, backoff_base: float = 10.0, backoff_cap: float = 360.0
    ) -> None:
        self.store = store
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._tracking: dict[str, _Tracking] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._feeder: asyncio.Task[None] | None = None
        # One pending wake-up per job: the earliest one; that pass re-arms later ones.
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._failed_syncs: dict[tuple[str, str], int] = {}

    async def start(self) -> None:
        self._queue = self.store.subscribe()
        for job in self.store.list("jobs"):
            self._dirty.add((job["metadata"]["namespace"], job["metadata"]["name"]))
        self._feeder = asyncio.create_task(self._feed())
        self._task = asyncio.create_task(self._run())
        self._wake.set()

    async def stop(self) -> None:
        for task in (self._feeder, self._task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for timer in self._timers.values():
            timer.cancel()
        self.store.unsubscribe(self._queue)

    def _mark(self, key: tuple[str, str]) -> None:
        self._dirty.add(key)
        self._wake.set()

    def _later(self, delay: float, key: tuple[str, str]) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0) + 0.01
        existing = self._timers.get(key)
        if existing is not None and loop.time() < existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)
        self._mark(key)

    async def _feed(self) -> None:
        while True:
            event = await self._queue.get()
            meta = event.object["metadata"]
            if event.resource == "jobs":
                if event.type == DELETED:
                    self._tracking.pop(meta["uid"], None)
                else:
                    self._mark((meta["namespace"], meta["name"]))
            elif event.resource == "pods":
                owner = _controller_uid(event.object)
                if owner is None:
                    continue
                if event.type == DELETED and owner in self._tracking:
                    self._tracking[owner].vanished[meta["uid"]] = event.object
                for ref in meta.get("ownerReferences") or []:
                    if ref.get("uid") == owner:
                        self._mark((meta["namespace"], ref["name"]))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Let a burst of events settle so one pass handles them together.
            await asyncio.sleep(0)
            while self._dirty:
                key = self._dirty.pop()
                try:
                    self.reconcile(*key)
                    self._failed_syncs.pop(key, None)
                except ApiError as error:
                    log.warning("job %s/%s: %s", key[0], key[1], error.message)
                    # Rate-limited requeue, as the real controller's work queue does: a pod
                    # that admission keeps refusing is retried ever more slowly.
                    failures = self._failed_syncs[key] = self._failed_syncs.get(key, 0) + 1
                    self._later(min(2.0 ** (failures - 1), 30.0), key)
                except Exception:
                    log.exception("job %s/%s: reconcile failed", *key)

    # ----- the sync ------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> None:
        job = self.store.get("jobs", namespace, name)
        if job is None or "deletionTimestamp" in job["metadata"]:
            return
        status = job.get("status") or {}
        if _condition(status, "Complete") or _condition(status, "Failed"):
            self._expire_after_ttl(job)
            return
        spec = job["spec"]
        uid = job["metadata"]["uid"]
        track = self._tracking.setdefault(uid, _Tracking())
        new_status = copy.deepcopy(status)
        now = datetime.now(UTC).timestamp()
        selector = ",".join(
            f"{k}={v}" for k, v in (spec.get("selector") or {}).get("matchLabels", {}).items()
        )
        pods = [
            p
            for p in self.store.list_owned("pods", uid, label_selector=selector or None)
            if _controller_uid(p) == uid and p["metadata"]["namespace"] == namespace
        ]
        for pod in pods:
            self._count(job, pod, track, now)
        for pod_uid, pod in list(track.vanished.items()):
            if pod_uid in track.discarded:
                del track.vanished[pod_uid]
                continue
            if pod.get("status", {}).get("phase") not in TERMINAL_PHASES:
                pod = copy.deepcopy(pod)
                pod.setdefault("status", {})["phase"] = "Failed"
            self._count(job, pod, track, now)
            del track.vanished[pod_uid]
        active = [
            p
            for p in pods
            if p.get("status", {}).get("phase") not in TERMINAL_PHASES
            and "deletionTimestamp" not in p["metadata"]
        ]
        if spec.get("suspend"):
            self._suspend(job, new_status, active, track)
            return
        suspended = _condition(new_status, "Suspended")
        if suspended:
            # Resuming restarts the activeDeadlineSeconds clock.
            suspended.update(_new_condition("Suspended", "JobResumed", "Job resumed"))
            suspended["status"] = "False"
            new_status["startTime"] = now_rfc3339()
            self.store.record_event(job, "Resumed", "Job resumed", "Normal", COMPONENT)
        new_status.setdefault("startTime", now_rfc3339())
        failure = self._failure(job, new_status, track, now)
        if failure is not None:
            reason, message = failure
            if not _condition(new_status, "FailureTarget"):
                new_status.setdefault("conditions", []).append(
                    _new_condition("FailureTarget", reason, message)
                )
                self.store.record_event(job, reason, message, "Warning", COMPONENT)
            for pod in active:
                self._delete_pod(job, pod, track, now)
            new_status["conditions"].append(_new_condition("Failed", reason, message))
            self._write_status(job, new_status, [], track)
            self._expire_after_ttl(self.store.get("jobs", namespace, name))
            return
        completions = spec.get("completions")
        succeeded = len(track.succeeded)
        if (completions is not None and succeeded >= completions) or (
            completions is None and succeeded > 0 and not active
        ):
            message = "Reached expected number of succeeded pods"
            if not _condition(new_status, "SuccessCriteriaMet"):
                new_status.setdefault("conditions", []).append(
                    _new_condition("SuccessCriteriaMet", "CompletionsReached", message)
                )
            for pod in active:
                self._delete_pod(job, pod, track, now)
            new_status["conditions"].append(
                _new_condition("Complete", "CompletionsReached", message)
            )
            new_status["completionTime"] = now_rfc3339()
            self.store.record_event(job, "Completed", "Job completed", "Normal", COMPONENT)
            self._write_status(job, new_status, [], track)
            self._expire_after_ttl(self.store.get("jobs", namespace, name))
            return
        parallelism = spec.get("parallelism", 1)
        remaining = parallelism if completions is None else completions - succeeded
        wanted = min(parallelism, remaining) - len(active)
        if wanted > 0:
            delay = self._backoff_delay(track, now)
            if delay > 0:
                self._later(delay, (namespace, name))
            else:
                for _ in range(wanted):
                    active.append(self._create_pod(job))
        deadline = spec.get("activeDeadlineSeconds")
        start = _parse_time(new_status.get("startTime"))
        if deadline and start is not None:
            self._later(start + deadline - now, (namespace, name))
        self._write_status(job, new_status, active, track)

    def _suspend(
        self,
        job: dict[str, Any],
        status: dict[str, Any],
        active: list[dict[str, Any]],
        track: _Tracking,
    ) -> None:
        """spec.suspend: delete active pods without counting them as failures."""
        for pod in active:
            track.discarded.add(pod["metadata"]["uid"])
            with contextlib.suppress(ApiError):
                self.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        conditions = status.setdefault("conditions", [])
        if not _condition(status, "Suspended"):
            conditions[:] = [c for c in conditions if c.get("type") != "Suspended"]
            conditions.append(_new_condition("Suspended", "JobSuspended", "Job suspended"))
            self.store.record_event(job, "Suspended", "Job suspended", "Normal", COMPONENT)
        status.pop("startTime", None)
        self._write_status(job, status, [], track)

    def _count(
        self, job: dict[str, Any], pod: dict[str, Any], track: _Tracking, now: float
    ) -> None:
        pod_uid = pod["metadata"]["uid"]
        phase = pod.get("status", {}).get("phase")
        if pod_uid in track.succeeded or pod_uid in track.failed or pod_uid in track.ignored:
            return
        if phase == "Succeeded":
            track.succeeded.add(pod_uid)
        elif phase == "Failed":
            verdict = evaluate_pod_failure_policy(job["spec"].get("podFailurePolicy"), pod)
            action = verdict[0] if verdict else "Count"
            if action == "Ignore":
                track.ignored.add(pod_uid)
                return
            track.failed.add(pod_uid)
            track.last_failure = now
            if action == "FailJob" and verdict and track.fail_job_message is None:
                track.fail_job_message = verdict[1]

    def _failure(
        self, job: dict[str, Any], status: dict[str, Any], track: _Tracking, now: float
    ) -> tuple[str, str] | None:
        existing = _condition(status, "FailureTarget")
        if existing:
            return existing.get("reason", ""), existing.get("message", "")
        if track.fail_job_message:
            return "PodFailurePolicy", track.fail_job_message
        if len(track.failed) > job["spec"].get("backoffLimit", 6):
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        deadline = job["spec"].get("activeDeadlineSeconds")
        start = _parse_time(status.get("startTime"))
        if deadline and start is not None and now >= start + deadline:
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        return None

    def _backoff_delay(self, track: _Tracking, now: float) -> float:
        if not track.failed:
            return 0.0
        delay = min(self.backoff_base * 2 ** (len(track.failed) - 1), self.backoff_cap)
        return max(track.last_failure + delay - now, 0.0)

    def _create_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        meta = job["metadata"]
        template = copy.deepcopy(job["spec"]["template"])
        template_meta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": template_meta.get("labels") or {},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        if template_meta.get("annotations"):
            pod["metadata"]["annotations"] = template_meta["annotations"]
        try:
            created = self.store.create("pods", meta["namespace"], pod)
        except ApiError as error:
            # pkg/controller/controller_utils.go CreatePods: FailedCreatePodReason,
            # "Error creating: %v"; the pod is retried on the next sync.
            self.store.record_event(
                job, "FailedCreate", f"Error creating: {error.message}", "Warning", COMPONENT
            )
            raise
        self.store.record_event(
            job,
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            "Normal",
            COMPONENT,
        )
        return created

    def _delete_pod(
        self, job: dict[str, Any], pod: dict[str, Any], track: _Tracking, now: float
    ) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.store.delete("pods", meta["namespace"], meta["name"])
            self.store.record_event(
                job, "SuccessfulDelete", f"Deleted pod: {meta['name']}", "Normal", COMPONENT
            )
        track.vanished.pop(meta["uid"], None)
        pod = copy.deepcopy(pod)
        pod.setdefault("status", {})["phase"] = "Failed"
        self._count(job, pod, track, now)

    def _write_status(
        self,
        job: dict[str, Any],
        status: dict[str, Any],
        active: list[dict[str, Any]],
        track: _Tracking,
    ) -> None:
        # Zero counters are omitted like the real API's omitempty fields; ready and
        # terminating are pointers there and so always present.
        for counter, value in (
            ("active", len(active)),
            ("succeeded", len(track.succeeded)),
            ("failed", len(track.failed)),
        ):
            if value:
                status[counter] = value
            else:
                status.pop(counter, None)
        status["ready"] = sum(
            1
            for pod in active
            for condition in pod.get("status", {}).get("conditions") or []
            if condition.get("type") == "Ready" and condition.get("status") == "True"
        )
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        meta = job["metadata"]

        def write(current: dict[str, Any]) -> None:
            current["status"] = status

        self.store.mutate("jobs", meta["namespace"], meta["name"], write)

    def _expire_after_ttl(self, job: dict[str, Any] | None) -> None:
        if job is None:
            return
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        status = job.get("status") or {}
        finished = _condition(status, "Complete") or _condition(status, "Failed")
        finished_at = _parse_time(status.get("completionTime")) or _parse_time(
            (finished or {}).get("lastTransitionTime")
        )
        if finished_at is None:
            return
        meta = job["metadata"]
        remaining = finished_at + ttl - datetime.now(UTC).timestamp()
        if remaining > 0:
            self._later(remaining, (meta["namespace"], meta["name"]))
            return
        # The TTL-after-finished controller deletes with Foreground propagation.
        with contextlib.suppress(ApiError):
            self.store.delete("jobs", meta["namespace"], meta["name"], "Foreground")
