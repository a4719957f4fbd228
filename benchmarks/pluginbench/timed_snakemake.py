"""Snakemake's command line, with the moment of every job success report written down.

Both executors under test subclass the executor interface's ``AbstractExecutor`` and
report a finished job through its ``report_job_success``. This launcher wraps that one
method before Snakemake starts, appending the wall-clock time of each report, and the
module of the executor that made it, to the file named by ``BENCH_REPORT_TIMES``. The
benchmark can then tell the executor's notice of the last pod's completion apart from
Snakemake's own end of run. Snakemake's built-in local executor reports through the same
method (it runs the workflow's ``localrules``, such as a final ``all`` rule that checks
every output in storage), so its reports are written down but not counted as the
executor's. It changes no behaviour: the original method runs right after the line is
written.

When the executor plugin is made (Snakemake has parsed the workflow and built its DAG by
then), it writes the process's VmRSS and VmHWM to ``memory-at-executor.json`` in the working
directory: the part of the peak that is there before any executor holds anything.

With ``BENCH_TRACE_MEMORY`` set (``run.py --trace-memory``), it also starts tracemalloc
when the executor plugin is made and, whenever the traced memory grows 10 % past its last
high (looked at every 10 s), writes ``trace-memory.json`` in the working directory: the
live memory allocated since then, grouped by the innermost frame in a package of interest,
so that the run's growth can be split between Snakemake, the executor plugin, the storage
plugin and the rest, with the process's RSS at the start and at the snapshot. The bench
kills the process at the end of a phase, so the file is rewritten at each new high rather
than at exit. Tracing makes the process slower and larger: use it for the break-down,
never for the timed figures.

With ``BENCH_EXECUTOR_STATE`` set (``run.py --measure-executor-state``), it writes
``executor-state.json`` every 15 s: the deep size of each attribute of the executor
object, leaving out what belongs to Snakemake (see ``deep_size``), and a census of the
process's objects by type. It costs a walk over
the executor's objects every 15 s, not a trace of every allocation.

It runs under each side's own interpreter (ours and the baseline's venv), so it uses only
what every Snakemake 9 installation has.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import tracemalloc
import types
from collections.abc import Callable

REPORT_TIMES_VARIABLE = "BENCH_REPORT_TIMES"
BUILT_IN_EXECUTORS = "snakemake.executors."
TRACE_MEMORY_VARIABLE = "BENCH_TRACE_MEMORY"
EXECUTOR_STATE_VARIABLE = "BENCH_EXECUTOR_STATE"
STATE_INTERVAL_SECONDS = 15.0
# The process's memory when the executor plugin is made, written in the working directory.
MEMORY_AT_EXECUTOR_FILE = "memory-at-executor.json"
SNAKEMAKE_OWN = ("snakemake", "snakemake_interface")
OUR_PACKAGE = "snakemake_executor_plugin_kubernetes"
NOT_STATE = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
)
TRACE_FRAMES = 8
TRACE_INTERVAL_SECONDS = 10.0
TRACE_GROWTH = 1.10  # a new snapshot once the traced memory is 10 % over the last one's
# Most specific first: a frame is owned by the first of these its file path contains.
OWNERS = (
    ("executor plugin", "/snakemake_executor_plugin_kubernetes/"),
    ("storage plugin", "/snakemake_storage_plugin_azblob/"),
    ("executor interface", "/snakemake_interface_executor_plugins/"),
    ("storage interface", "/snakemake_interface_storage_plugins/"),
    ("snakemake", "/snakemake/"),
)


def install_report_timer(path: str) -> None:
    from snakemake_interface_executor_plugins.executors.base import AbstractExecutor

    report_job_success = AbstractExecutor.report_job_success

    def timed_report_job_success(self, job_info):
        with open(path, "a") as times:
            times.write(f"{time.time():.6f} {type(self).__module__}\n")
        return report_job_success(self, job_info)

    AbstractExecutor.report_job_success = timed_report_job_success


def owner_of(traceback: tracemalloc.Traceback) -> tuple[str, str]:
    """The innermost frame in a package of interest: (owner, "file:line")."""
    for frame in reversed(traceback):
        for owner, marker in OWNERS:
            if marker in frame.filename:
                short = frame.filename.split(marker, 1)[1]
                return owner, f"{marker.strip('/')}/{short}:{frame.lineno}"
    innermost = traceback[-1]
    return "other", f"{innermost.filename}:{innermost.lineno}"


def memory_breakdown(snapshot: tracemalloc.Snapshot) -> dict:
    by_owner: dict[str, int] = {}
    by_site: dict[tuple[str, str], int] = {}
    for trace in snapshot.traces:
        owner, site = owner_of(trace.traceback)
        by_owner[owner] = by_owner.get(owner, 0) + trace.size
        by_site[owner, site] = by_site.get((owner, site), 0) + trace.size
    sites = sorted(by_site.items(), key=lambda item: -item[1])[:60]
    mib = 1024 * 1024
    return {
        "traced_mib": round(sum(by_owner.values()) / mib, 2),
        "by_owner_mib": {k: round(v / mib, 2) for k, v in sorted(by_owner.items())},
        "top_sites_mib": [[owner, site, round(size / mib, 3)] for (owner, site), size in sites],
    }


def process_memory_mib() -> dict[str, float]:
    """VmRSS and VmHWM of this process (Linux), in MiB."""
    figures = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = round(int(value.split()[0]) / 1024, 1)
    return figures


def on_plugin_executor(start: Callable[[object], None]) -> None:
    """Call ``start(executor)`` when the executor plugin under test is made (once, and not
    for Snakemake's own local executor). Snakemake has parsed the workflow and built its
    DAG by then, so what is measured from there is what the run adds on top of that."""
    from snakemake_interface_executor_plugins.executors.base import AbstractExecutor

    executor_init = AbstractExecutor.__init__
    started = threading.Event()

    def measured_init(self, *args, **kwargs):
        if not started.is_set() and not type(self).__module__.startswith(BUILT_IN_EXECUTORS):
            started.set()
            start(self)
        return executor_init(self, *args, **kwargs)

    AbstractExecutor.__init__ = measured_init


def write_report(path: str, report: dict) -> None:
    """Replace ``path`` at once: the bench may kill the process while it writes."""
    with open(path + ".tmp", "w") as out:
        json.dump(report, out, indent=1)
    os.replace(path + ".tmp", path)


def start_tracing(path: str = "trace-memory.json") -> None:
    at_start = process_memory_mib()
    tracemalloc.start(TRACE_FRAMES)

    def watch() -> None:
        high = 0
        while True:
            time.sleep(TRACE_INTERVAL_SECONDS)
            current, _ = tracemalloc.get_traced_memory()
            if current <= high * TRACE_GROWTH:
                continue
            high = current
            report = memory_breakdown(tracemalloc.take_snapshot())
            report.update(time=time.time(), at_start=at_start, now=process_memory_mib())
            write_report(path, report)

    threading.Thread(target=watch, name="bench-trace-memory", daemon=True).start()


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes of ``root`` and of every object reachable from it that is not Snakemake's
    (its jobs, workflow and logger are counted as Snakemake's own) and not code (modules,
    classes, functions, bound methods, which would lead to everything). ``seen`` is shared
    between roots so that nothing is counted twice."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, NOT_STATE):
            continue
        module = type(obj).__module__ or ""
        if module.startswith(SNAKEMAKE_OWN) and not module.startswith(OUR_PACKAGE):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def object_census(top: int = 25) -> list[tuple[str, int, float]]:
    """(type, count, MiB by sys.getsizeof) of the objects the garbage collector tracks
    (containers and instances, not strings or numbers), largest first: which kinds of
    object a growing process is made of, Snakemake's and ours alike."""
    count: dict[str, int] = {}
    size: dict[str, int] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        count[name] = count.get(name, 0) + 1
        size[name] = size.get(name, 0) + sys.getsizeof(obj)
    largest = sorted(size, key=lambda name: -size[name])[:top]
    return [(name, count[name], round(size[name] / 2**20, 2)) for name in largest]


def start_measuring_state(executor: object, path: str = "executor-state.json") -> None:
    """Every 15 s, the deep size of each attribute of ``executor`` (largest first) and
    their sum: what the executor itself holds, without tracemalloc's cost, so it can be
    read at full size. Written to the working directory."""

    def measure_forever() -> None:
        while True:
            time.sleep(STATE_INTERVAL_SECONDS)
            seen: set[int] = {id(executor)}
            sizes = {name: deep_size(value, seen) for name, value in list(vars(executor).items())}
            mib = 1024 * 1024
            write_report(
                path,
                {
                    "time": time.time(),
                    "total_mib": round(sum(sizes.values()) / mib, 2),
                    "by_attribute_mib": {
                        name: round(size / mib, 3)
                        for name, size in sorted(sizes.items(), key=lambda item: -item[1])
                        if size >= 1024
                    },
                    "process": process_memory_mib(),
                    "gc_objects_by_type": object_census(),
                },
            )

    threading.Thread(target=measure_forever, name="bench-executor-state", daemon=True).start()


def last_plugin_report(report_times: str) -> float | None:
    """The last report made by an executor plugin, leaving out Snakemake's own executors."""
    times = []
    for line in report_times.splitlines():
        moment, _, module = line.partition(" ")
        if not module.startswith(BUILT_IN_EXECUTORS):
            times.append(float(moment))
    return max(times, default=None)


def main() -> None:
    path = os.environ.get(REPORT_TIMES_VARIABLE)
    if path:
        install_report_timer(path)
    on_plugin_executor(lambda executor: write_report(MEMORY_AT_EXECUTOR_FILE, process_memory_mib()))
    if os.environ.get(TRACE_MEMORY_VARIABLE):
        on_plugin_executor(lambda executor: start_tracing())
    if os.environ.get(EXECUTOR_STATE_VARIABLE):
        on_plugin_executor(start_measuring_state)
    from snakemake.cli import main as snakemake_main

    snakemake_main()


if __name__ == "__main__":
    main()
