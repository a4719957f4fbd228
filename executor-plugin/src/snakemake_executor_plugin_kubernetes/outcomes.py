"""Decide from a Job and its pods whether a job runs, succeeded or failed, and why."""

import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from snakemake_executor_plugin_kubernetes.cachefields import name_of
from snakemake_executor_plugin_kubernetes.placement import Diagnosis
from snakemake_executor_plugin_kubernetes.template import CONTAINER_NAME
from snakemake_executor_plugin_kubernetes.usage import parse_message

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
DISRUPTION_REASONS = frozenset({"Evicted", "NodeLost", "Preempting", "Terminated", "Shutdown"})


@dataclass
class Limits:
    disruption_retries: int = 3
    unschedulable_timeout: float = 600
    image_pull_grace: float = 180
    # Without an autoscaler, "no node could ever hold it" waits this long for a node to be
    # added by hand or by an autoscaler we cannot see (e.g. node auto-provisioning).
    no_autoscaler_grace: float = 60


class VerdictState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class Verdict:
    state: VerdictState
    message: str = ""
    pod: str | None = None  # the pod whose logs explain the outcome
    delete_job: bool = False  # the executor ends the Job itself (Kubernetes would not)
    # The job container ended but a classic sidecar keeps the pod running: the executor
    # deletes the pod once it has read the log.
    end_pod: bool = False
    notices: list[str] = field(default_factory=list)  # to log once, e.g. a retried eviction
    # (pod, why it waits) for a Pending pod whose reason is new: logged as information
    # at the end of the round, summed up when many pods wait alike (see pending.py)
    waiting: list[tuple[str, str]] = field(default_factory=list)


class JobTracker:
    """Per-Job memory between status rounds: when a stall was first seen (by the
    submitter's monotonic clock, never the cluster's), disruptions already reported, and
    the last waiting reason told. A run holds one per active job (10,000 Pending at once),
    each with a stall and a reason told about its one pod, so entries are kept in small
    tuples (a dict of one entry costs twice as much), made on first use."""

    __slots__ = ("_disruptions", "_reasons", "_stalls")

    def __init__(self) -> None:
        self._stalls: tuple[tuple[str, str, float], ...] = ()  # (subject, kind, since)
        self._disruptions: set[str] | None = None
        self._reasons: tuple[tuple[str, str], ...] = ()  # (pod, reason told)

    def stalled_for(self, pod: str, kind: str, now: float) -> float:
        """Seconds since the stall ``kind`` of ``pod`` was first seen (0 the first time)."""
        for subject, known, since in self._stalls:
            if subject == pod and known == kind:
                return now - since
        self._stalls = (*self._stalls, (pod, kind, now))
        return 0.0

    def first_notice(self, subject: str, kind: str, now: float) -> bool:
        """True the first time only: whether the notice ``kind`` about ``subject`` is
        still to be told."""
        noticed = sys.intern(f"{kind}-noticed")
        if any(s == subject and k == noticed for s, k, _ in self._stalls):
            return False
        self._stalls = (*self._stalls, (subject, noticed, now))
        return True

    def clear_other_stalls(self, pod: str, kind: str | None) -> None:
        if any(s == pod and k != kind for s, k, _ in self._stalls):
            self._stalls = tuple(e for e in self._stalls if e[0] != pod or e[1] == kind)

    def disrupted(self, pod: str) -> int | None:
        """Record a disruption of ``pod``; its number (1, 2, ...) the first time, else None."""
        if self._disruptions is None:
            self._disruptions = set()
        if pod in self._disruptions:
            return None
        self._disruptions.add(pod)
        return len(self._disruptions)

    def reason_told(self, pod: str) -> str | None:
        return next((reason for name, reason in self._reasons if name == pod), None)

    def told(self, pod: str, reason: str) -> None:
        self._reasons = (*(e for e in self._reasons if e[0] != pod), (pod, reason))

    def forget_reason(self, pod: str) -> None:
        if any(name == pod for name, _ in self._reasons):
            self._reasons = tuple(e for e in self._reasons if e[0] != pod)


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def _true(conds: dict[str, dict[str, Any]], kind: str) -> dict[str, Any] | None:
    cond = conds.get(kind)
    return cond if cond is not None and cond.get("status") == "True" else None


def _name(obj: dict[str, Any]) -> str:
    return name_of(obj) or "?"


def _container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER_NAME:
            return status
    return statuses[0] if statuses else {}


def is_disrupted(pod: dict[str, Any]) -> bool:
    """A failed pod that was disrupted (evicted, preempted, node lost), not a job failure."""
    status = pod.get("status") or {}
    if status.get("phase") != "Failed":
        return False
    return (
        bool(_true(_conditions(pod), "DisruptionTarget"))
        or status.get("reason") in DISRUPTION_REASONS
    )


def describe_disruption(pod: dict[str, Any]) -> str:
    cond = _conditions(pod).get("DisruptionTarget") or {}
    status = pod.get("status") or {}
    reason = cond.get("reason") or status.get("reason") or ""
    message = cond.get("message") or status.get("message") or ""
    node = (pod.get("spec") or {}).get("nodeName") or "(none)"
    lowered = f"{reason} {message}".lower()
    if "evict" in lowered:
        what = "was evicted"
    elif "preempt" in lowered:
        what = "was preempted"
    elif reason in ("DeletionByPodGC", "DeletionByTaintManager", "NodeLost") or "node" in lowered:
        what = "lost its node"
    elif not reason:
        what = "was deleted before it finished (node lost or pod removed)"
    else:
        what = "was disrupted"
    detail = f"{reason}: {message}" if reason and message else reason or message
    return f"pod {_name(pod)} on node {node} {what}" + (f" ({detail})" if detail else "")


def _job_container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for container in containers:
        if container.get("name") == CONTAINER_NAME:
            return container
    return {}


def describe_failure(job: dict[str, Any] | None, pod: dict[str, Any] | None) -> str:
    """One sentence: the Kubernetes reason, exit code and what the limits were."""
    job = job or {}
    pod_status = (pod or {}).get("status") or {}
    container = _container_status(pod or {})
    state = container.get("state") or {}
    terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
    job_failed = _true(_conditions(job), "Failed") or _true(_conditions(job), "FailureTarget")
    pod_spec = job.get("spec", {}).get("template", {}).get("spec", {})
    limits = _job_container(job).get("resources", {}).get("limits", {})

    if terminated and terminated.get("reason") == "OOMKilled":
        limit = limits.get("memory", "none")
        return (
            f"OOMKilled: the container exceeded its memory limit {limit} "
            f"(exit code {terminated.get('exitCode')}); raise mem_mb for the rule"
        )
    deadline_job = job_failed and job_failed.get("reason") == "DeadlineExceeded"
    if pod_status.get("reason") == "DeadlineExceeded" or deadline_job:
        seconds = pod_spec.get("activeDeadlineSeconds") or job.get("spec", {}).get(
            "activeDeadlineSeconds"
        )
        runtime = f"{seconds / 60:g} min" if seconds else "the deadline"
        return (
            f"DeadlineExceeded: the job ran longer than its runtime of {runtime} "
            f"(activeDeadlineSeconds={seconds})"
        )
    if terminated:
        reason = terminated.get("reason") or "Error"
        text = f"{reason}: exit code {terminated.get('exitCode')}"
        if terminated.get("message") and parse_message(terminated["message"]) is None:
            text += f" ({terminated['message'].strip()[:300]})"
        return text
    if pod_status.get("reason"):
        return f"{pod_status['reason']}: {pod_status.get('message', '')}".strip()
    if job_failed:
        return f"{job_failed.get('reason')}: {job_failed.get('message', '')}".strip()
    return "the Job failed without a pod status"


def judge(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    limits: Limits,
    tracker: JobTracker,
    now: float,
    gone: list[dict[str, Any]] | None = None,
    last_occupied: float | None = None,
    diagnoses: dict[str, Diagnosis] | None = None,
) -> Verdict:
    """`pods`: the Job's pods (oldest first); `gone`: its pods deleted unfinished;
    `last_occupied`: when the run last had a pod on a node (see occupancy); `diagnoses`:
    why unschedulable pods wait, by pod name (see placement)."""
    if job is None:
        return Verdict(VerdictState.FAILED, "its Kubernetes Job was deleted from outside this run")
    conds = _conditions(job)
    if _true(conds, "Complete") or _true(conds, "SuccessCriteriaMet"):
        done = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
        return Verdict(VerdictState.SUCCEEDED, pod=_name(done[-1]) if done else None)

    notices: list[str] = []
    live_names = {_name(p) for p in pods}
    # deleted pods first: their replacements are younger
    disrupted = [p for p in gone or [] if _name(p) not in live_names]
    disrupted += [p for p in pods if is_disrupted(p)]
    for pod in disrupted:
        n = tracker.disrupted(_name(pod))
        if n is not None:
            retry = (
                f"Kubernetes retries the job in a new pod (disruption {n} of "
                f"{limits.disruption_retries} allowed by --kubernetes-disruption-retries; "
                "Snakemake's --retries are not used)"
                if n <= limits.disruption_retries
                else "no disruption retries left"
            )
            notices.append(f"{describe_disruption(pod)}; {retry}")

    failed = _true(conds, "Failed") or _true(conds, "FailureTarget")
    app_failed = [
        p for p in pods if (p.get("status") or {}).get("phase") == "Failed" and p not in disrupted
    ]
    if failed or app_failed:
        pod = app_failed[-1] if app_failed else (pods[-1] if pods else None)
        reason = f" ({failed.get('reason')})" if failed and failed.get("reason") else ""
        return Verdict(
            VerdictState.FAILED,
            f"Kubernetes Job {_name(job)} failed{reason}: {describe_failure(job, pod)}",
            pod=_name(pod) if pod else None,
            notices=notices,
        )
    if len(disrupted) > limits.disruption_retries:
        return Verdict(
            VerdictState.FAILED,
            f"Kubernetes Job {_name(job)}: its pod was disrupted {len(disrupted)} times, more "
            f"than --kubernetes-disruption-retries={limits.disruption_retries} "
            f"(last: {describe_disruption(disrupted[-1])})",
            pod=_name(disrupted[-1]),
            delete_job=True,
            notices=notices,
        )

    live = [p for p in pods if (p.get("status") or {}).get("phase") in (None, "Pending", "Running")]
    waiting: list[tuple[str, str]] = []
    for pod in live:
        ended = ended_beside_sidecar(job, pod)
        if ended is not None:
            ended.notices = notices
            return ended
    for pod in live:
        stall = _stall(pod, limits, tracker, now, last_occupied, diagnoses or {}, waiting)
        if stall is not None:
            stall.notices = notices
            stall.waiting = waiting
            return stall
    return Verdict(VerdictState.RUNNING, notices=notices, waiting=waiting)


def _stall(
    pod: dict[str, Any],
    limits: Limits,
    tracker: JobTracker,
    now: float,
    last_occupied: float | None,
    diagnoses: dict[str, Diagnosis],
    waiting: list[tuple[str, str]],
) -> Verdict | None:
    name = _name(pod)
    scheduled = _conditions(pod).get("PodScheduled") or {}
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        tracker.clear_other_stalls(name, "unschedulable")
        stalled = tracker.stalled_for(name, "unschedulable", now)
        diagnosis = diagnoses.get(name)
        if diagnosis is not None:
            if diagnosis.text != tracker.reason_told(name):
                tracker.told(name, diagnosis.text)
                waiting.append((name, diagnosis.text))
            if diagnosis.never and stalled >= diagnosis.grace:
                return Verdict(
                    VerdictState.FAILED,
                    f"Unschedulable: {diagnosis.failure}",
                    pod=name,
                    delete_job=True,
                )
        waited = stalled
        if last_occupied is not None:
            waited = min(waited, now - last_occupied)
        if waited > limits.unschedulable_timeout:
            why = scheduled.get("message") or "no message from the scheduler"
            if diagnosis is not None:
                why += f" ({diagnosis.text})"
            return Verdict(
                VerdictState.FAILED,
                f"Unschedulable: pod {name} could not be placed, with no other pod of this "
                f"run on a node, for more than "
                f"--kubernetes-unschedulable-timeout={limits.unschedulable_timeout:g}s: {why}",
                pod=name,
                delete_job=True,
            )
        return None
    tracker.forget_reason(name)
    waiting = (_container_status(pod).get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason")
    kind = (
        "image" if reason in IMAGE_PULL_REASONS else "config" if reason in CONFIG_REASONS else None
    )
    tracker.clear_other_stalls(name, kind)
    if kind and tracker.stalled_for(name, kind, now) > limits.image_pull_grace:
        image = next((c.get("image") for c in (pod.get("spec") or {}).get("containers") or []), "?")
        return Verdict(
            VerdictState.FAILED,
            f"{reason}: pod {name} (image {image}) stayed in {reason} for more than "
            f"--kubernetes-image-pull-grace={limits.image_pull_grace:g}s: "
            f"{waiting.get('message', '')}".rstrip(": "),
            pod=name,
            delete_job=True,
        )
    return None


def ended_beside_sidecar(job: dict[str, Any], pod: dict[str, Any]) -> Verdict | None:
    """The job container terminated while another container (a classic sidecar such as an
    Istio or Linkerd proxy) keeps the pod Running: the job's outcome is its container's exit
    code. A native sidecar (an init container with restartPolicy Always) never gets here:
    Kubernetes stops it and ends the pod itself."""
    if (pod.get("status") or {}).get("phase") != "Running":
        return None
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    mine = next((s for s in statuses if s.get("name") == CONTAINER_NAME), None)
    terminated = ((mine or {}).get("state") or {}).get("terminated")
    if terminated is None or len(statuses) < 2:
        return None
    others = sorted(s.get("name", "?") for s in statuses if s.get("name") != CONTAINER_NAME)
    if terminated.get("exitCode") == 0:
        return Verdict(VerdictState.SUCCEEDED, pod=_name(pod), end_pod=True)
    return Verdict(
        VerdictState.FAILED,
        f"Kubernetes Job {_name(job)}: the job container failed ({describe_failure(job, pod)}) "
        f"while container(s) {', '.join(others)} kept pod {_name(pod)} running; the executor "
        "ended the pod",
        pod=_name(pod),
        end_pod=True,
    )
