"""Pods the API server refused to create: the Job controller's FailedCreate events.

When admission refuses a Job's pod (Pod Security, LimitRange, ResourceQuota, a webhook), the
Job exists but never gets a pod; the reason is only in a `FailedCreate` event on the Job
("Error creating: pods "x" is forbidden: ..."). The executor reads these events (one list of
the namespace's FailedCreate events at most every few seconds, only while some Job has no
pod) and ends such a job with the API server's words, or, when the refusal may pass (quota
that other pods hold), waits for it up to --kubernetes-unschedulable-timeout.
"""

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient, core_path
from snakemake_executor_plugin_kubernetes.outcomes import JobTracker, Limits, Verdict, VerdictState
from snakemake_executor_plugin_kubernetes.quantities import parse_quantity

SCAN_INTERVAL_SECONDS = 3.0
FIELD_SELECTOR = "involvedObject.kind=Job,reason=FailedCreate"
_QUOTA = re.compile(
    r"exceeded quota: (?P<quota>[^,]+), requested: (?P<requested>.*?), used: (?P<used>.*?), "
    r"limited: (?P<limited>.*)$"
)
_TRANSIENT_HINTS = ("Internal error occurred", "failed calling webhook", "timeout", "Timeout")


def _amounts(text: str) -> dict[str, object]:
    amounts = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            amounts[key.strip()] = parse_quantity(value.strip())
        except ValueError:
            continue
    return amounts


def _cause(message: str) -> str:
    """The API server's error inside the event ("Error creating: <error>")."""
    return message.removeprefix("Error creating: ")


@dataclass
class RefusalScanner:
    client: KubeClient
    namespace: str
    warn: Callable[[str], None]
    interval: float = SCAN_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _last_scan: float = float("-inf")
    _latest: dict[str, tuple[str, str]] = field(default_factory=dict)  # job: (time, message)
    disabled: bool = False

    def refusals(self, podless_jobs: Iterable[str]) -> dict[str, str]:
        """The latest FailedCreate message of each of these Jobs that has one."""
        wanted = set(podless_jobs)
        if not wanted:
            return {}
        now = self.clock()
        if not self.disabled and now - self._last_scan >= self.interval:
            self._last_scan = now
            self._scan()
        return {job: self._latest[job][1] for job in wanted if job in self._latest}

    def _scan(self) -> None:
        try:
            listed = self.client.request(
                "GET",
                core_path(self.namespace, "events"),
                query=[("fieldSelector", FIELD_SELECTOR)],
            )
        except ApiError as e:
            if e.status in (401, 403):
                self.disabled = True
                self.warn(
                    f"Cannot list events in namespace {self.namespace} ({e.status}: {e.message}); "
                    "pods that the API server refuses to create are then reported only after "
                    "--kubernetes-unschedulable-timeout. Grant 'list' on 'events' "
                    f"(kubectl auth can-i list events -n {self.namespace})."
                )
            return
        for event in listed.get("items") or []:
            job = (event.get("involvedObject") or {}).get("name", "")
            stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
            known = self._latest.get(job)
            if known is None or stamp >= known[0]:
                self._latest[job] = (stamp, event.get("message", ""))

    def forget(self, job: str) -> None:
        self._latest.pop(job, None)


def judge_refusal(
    job: str, message: str, limits: Limits, tracker: JobTracker, now: float
) -> Verdict | None:
    """A verdict for a Job whose pod the API server refused; None while it may still pass."""
    cause = _cause(message)
    head = f"Kubernetes refused to create the pod of Job {job}: {cause}"
    quota = _QUOTA.search(cause)
    if quota is not None:
        requested = _amounts(quota["requested"])
        limited = _amounts(quota["limited"])
        never = [k for k, v in requested.items() if k in limited and v > limited[k]]
        if never:
            return Verdict(
                VerdictState.FAILED,
                f"{head}. It can never fit: ResourceQuota {quota['quota']} allows "
                f"{quota['limited']} in all; lower the rule's resources or raise the quota.",
                delete_job=True,
            )
        return _wait(job, head, "quota", limits, tracker, now)
    if any(hint in cause for hint in _TRANSIENT_HINTS):
        return _wait(job, head, "admission", limits, tracker, now)
    hint = ""
    if "violates PodSecurity" in cause:
        hint = (
            ". The namespace's Pod Security level (label pod-security.kubernetes.io/enforce) "
            "forbids this pod; jobs that need privileges (k8s_privileged, Apptainer) need a "
            "namespace whose level is privileged"
        )
    elif "must specify" in cause:
        hint = (
            ". The namespace's ResourceQuota requires every container to set these "
            "resources; give the rule mem_mb and cpu resources, or set defaults in a LimitRange"
        )
    return Verdict(VerdictState.FAILED, head + hint, delete_job=True)


def _wait(
    job: str, head: str, kind: str, limits: Limits, tracker: JobTracker, now: float
) -> Verdict | None:
    waited = tracker.stalled_for(job, kind, now)
    if waited > limits.unschedulable_timeout:
        return Verdict(
            VerdictState.FAILED,
            f"{head}; still refused after --kubernetes-unschedulable-timeout="
            f"{limits.unschedulable_timeout:g}s",
            delete_job=True,
        )
    if tracker.first_notice(job, kind, now):
        return Verdict(VerdictState.RUNNING, notices=[f"{head}; waiting, Kubernetes retries"])
    return None
