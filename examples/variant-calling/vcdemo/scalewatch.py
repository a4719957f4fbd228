"""Print the cluster-autoscaler's story while Snakemake runs: its events as they come and the
node count of each pool whenever it changes (what `kubectl get events -w` and `kubectl get
nodes -w` show on AKS). Needs an account that may list nodes and events cluster-wide (the
admin kubeconfig of the local cluster), not the executor's least-privilege one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

POOL_LABEL = "kubernetes.azure.com/agentpool"
# The reasons cluster-autoscaler gives its events (kubernetes/autoscaler, cluster-autoscaler
# processors/status/eventing_scale_up_processor.go and core/scaledown/actuation/actuator.go).
AUTOSCALER_REASONS = ("TriggeredScaleUp", "NotTriggerScaleUp", "ScaleDown", "ScaleDownEmpty")


@dataclass(frozen=True)
class SeenEvent:
    uid: str
    count: int
    reason: str
    kind: str
    name: str
    message: str
    when: datetime | None


@dataclass
class ScaleStory:
    """What the watcher saw: node counts per pool over time and the autoscaler's events.
    Fed with snapshots; returns the lines to print for each."""

    started: float = field(default_factory=time.monotonic)
    since: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    counts: dict[str, int] = field(default_factory=dict)
    first_counts: dict[str, int] = field(default_factory=dict)
    peak_counts: dict[str, int] = field(default_factory=dict)
    events: list[SeenEvent] = field(default_factory=list)
    _event_counts: dict[str, int] = field(default_factory=dict)

    def elapsed(self, now: float | None = None) -> str:
        return f"+{(time.monotonic() if now is None else now) - self.started:4.0f}s"

    def observe_nodes(self, pools: Iterable[str], now: float | None = None) -> list[str]:
        counts: dict[str, int] = {}
        for pool in pools:
            counts[pool] = counts.get(pool, 0) + 1
        for pool in self.counts:
            counts.setdefault(pool, 0)
        if counts == self.counts:
            return []
        for pool, count in counts.items():
            self.first_counts.setdefault(pool, count)
            self.peak_counts[pool] = max(self.peak_counts.get(pool, 0), count)
        self.counts = counts
        listing = ", ".join(f"{pool} {count}" for pool, count in sorted(counts.items()))
        return [f"  [nodes] {self.elapsed(now)} {listing}"]

    def observe_events(self, events: Iterable[SeenEvent], now: float | None = None) -> list[str]:
        lines = []
        for event in sorted(events, key=lambda e: (e.when or self.since, e.uid)):
            if event.reason not in AUTOSCALER_REASONS:
                continue
            if event.when is not None and event.when < self.since:
                continue  # an earlier run's
            if self._event_counts.get(event.uid, 0) >= event.count:
                continue
            self._event_counts[event.uid] = event.count
            self.events.append(event)
            lines.append(
                f"  [autoscaler] {self.elapsed(now)} {event.reason} "
                f"{event.kind.lower()}/{event.name}: {event.message}"
            )
        return lines

    def reasons_seen(self) -> set[str]:
        return {event.reason for event in self.events}

    def summary(self, scale_down_seconds: float | None, kubeconfig: Path | None) -> list[str]:
        """One line per pool that changed, then how to watch the scale-down."""
        changed = [
            pool
            for pool in sorted(self.peak_counts)
            if self.peak_counts[pool] != self.first_counts[pool]
            or self.counts.get(pool) != self.first_counts[pool]
        ]
        if not changed:
            pools = ", ".join(f"{p} {n}" for p, n in sorted(self.counts.items())) or "none seen"
            return [f"node pools did not change size (nodes: {pools})"]
        prefix = f"KUBECONFIG={kubeconfig} " if kubeconfig else ""
        idle = f"after {scale_down_seconds:.0f} s idle" if scale_down_seconds else "when idle"
        lines = []
        for pool in changed:
            first, peak, last = (
                self.first_counts[pool],
                self.peak_counts[pool],
                self.counts.get(pool, 0),
            )
            now = f" (now {last})" if last != peak else ""
            lines.append(f"{pool}: {first} -> {peak} nodes{now}")
        lines.append(f"scale-down follows {idle}: watch with {prefix}kubectl get nodes -w")
        return lines


def _event_time(event: Any) -> datetime | None:
    for value in (event.last_timestamp, event.event_time, event.metadata.creation_timestamp):
        if value is not None:
            return value
    return None


class ScaleWatcher:
    """Polls nodes and events (every `interval` seconds) in a thread and prints what changed."""

    def __init__(
        self,
        kubeconfig: Path,
        interval: float = 1.0,
        emit: Callable[[str], None] = print,
    ) -> None:
        self._api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self._core = client.CoreV1Api(self._api_client)
        self._interval = interval
        self._emit = emit
        self.story = ScaleStory()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scale-watcher", daemon=True)
        self._complained: set[str] = set()

    def __enter__(self) -> ScaleWatcher:
        self.poll()  # the starting node count, before the run adds anything
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()  # what came in the last interval
        self._api_client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def poll(self) -> None:
        try:
            nodes = self._core.list_node(_request_timeout=10).items
            events = self._core.list_event_for_all_namespaces(_request_timeout=10).items
        except Exception as error:  # the watcher only informs; the run decides success
            what = type(error).__name__
            if what not in self._complained:
                self._complained.add(what)
                self._emit(f"  [nodes] cannot list nodes or events right now: {what}")
            return
        pools = [(node.metadata.labels or {}).get(POOL_LABEL, "(no pool)") for node in nodes]
        seen = [
            SeenEvent(
                uid=event.metadata.uid or event.metadata.name,
                count=event.count or 1,
                reason=event.reason or "",
                kind=event.involved_object.kind or "",
                name=event.involved_object.name or "",
                message=event.message or "",
                when=_event_time(event),
            )
            for event in events
        ]
        for line in self.story.observe_nodes(pools) + self.story.observe_events(seen):
            self._emit(line)
