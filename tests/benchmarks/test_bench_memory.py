"""The benchmark's two memory break-downs: the executor's deep size, and tracemalloc's
split by owner. Both must count what they say and leave Snakemake's objects out."""

from __future__ import annotations

import tracemalloc

from pluginbench.timed_snakemake import deep_size, memory_breakdown, owner_of
from snakemake_executor_plugin_kubernetes.outcomes import JobTracker


class SnakemakeLike:
    """Stands in for a Snakemake job: counted as Snakemake's, not the executor's."""

    def __init__(self) -> None:
        self.payload = "x" * 100_000


SnakemakeLike.__module__ = "snakemake.jobs"


def test_deep_size_counts_what_the_executor_holds_and_not_snakemakes_jobs() -> None:
    trackers = {f"job-{i}": JobTracker() for i in range(100)}
    alone = deep_size(trackers, set())
    assert alone > 100 * 40  # the dict, its keys and 100 trackers

    queued = [(SnakemakeLike(), "manifest")]
    assert deep_size(queued, set()) < 10_000  # the 100 kB job is Snakemake's

    seen: set[int] = set()
    assert deep_size(trackers, seen) == alone
    assert deep_size({"again": trackers}, seen) < 1_000  # shared objects count once


def test_memory_is_owned_by_the_innermost_frame_of_a_package_of_interest() -> None:
    tracemalloc.start(8)
    try:
        held = [JobTracker() for _ in range(2_000)]  # allocated here: "other"
        for tracker in held:
            tracker.stalled_for("pod", "image", 1.0)  # a dict made in outcomes.py: ours
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    owners = {owner_of(trace.traceback)[0] for trace in snapshot.traces}
    assert {"other", "executor plugin"} <= owners
    report = memory_breakdown(snapshot)
    assert report["by_owner_mib"]["executor plugin"] > 0.1  # 2,000 dicts of one entry
    assert any("outcomes.py" in site for _, site, _ in report["top_sites_mib"])
    assert report["traced_mib"] >= sum(report["by_owner_mib"].values()) - 0.01
    assert report["top_sites_mib"], report
    assert len(held) == 2_000


def test_measuring_starts_once_when_the_plugin_executor_is_made(monkeypatch) -> None:
    from snakemake_interface_executor_plugins.executors.base import AbstractExecutor

    from pluginbench import timed_snakemake

    monkeypatch.setattr(AbstractExecutor, "__init__", lambda self, *a, **kw: None)
    started: list[object] = []
    timed_snakemake.on_plugin_executor(started.append)

    class LocalLike(AbstractExecutor):
        pass

    LocalLike.__module__ = "snakemake.executors.local"

    class PluginLike(AbstractExecutor):
        pass

    LocalLike.__abstractmethods__ = PluginLike.__abstractmethods__ = frozenset()
    LocalLike()
    assert started == []  # Snakemake's own local executor is not the one measured
    first = PluginLike()
    PluginLike()  # a second one starts nothing more
    assert started == [first]
