"""The efficiency report: what each job requested against what it used.

Each pod's usage arrives in its container's termination message (see `usage`), which the
run's pod watch already delivers, so the report costs no API request. At the end of the run
the executor writes a TSV (one row per job) and an SVG (one row per rule) next to
Snakemake's log, and logs three lines naming the rules most over- and under-requested.
"""

import csv
import io
import logging
import math
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from kubernetes.utils import parse_quantity

from snakemake_executor_plugin_kubernetes.naming import ATTEMPT_LABEL
from snakemake_executor_plugin_kubernetes.template import CONTAINER_NAME
from snakemake_executor_plugin_kubernetes.usage import (
    TERMINATION_MESSAGE_PATH,
    Usage,
    parse_message,
)

PACKAGE = "snakemake_executor_plugin_kubernetes"
MB = 1_000_000  # Snakemake's mem_mb is in megabytes, rendered as the quantity suffix "M"
# Headroom of the suggested mem_mb over the largest peak seen for a rule.
SUGGESTION_HEADROOM = 1.2
# A rule whose peak reaches this share of its request is under-requested.
UNDER_REQUESTED_SHARE = 0.9

COLUMNS = (
    "rule",
    "wildcards",
    "jobid",
    "attempt",
    "status",
    "requested_cpu",
    "requested_mem_mb",
    "peak_mem_mb",
    "cpu_seconds",
    "wall_seconds",
    "cpu_efficiency",
    "node",
    "kubernetes_job",
    "usage_source",
)


def wrap_command(command: str, workdir: str) -> str:
    """The job's shell command, run under the usage recorder.

    The message file is given relative to the container's working directory: in a real
    container that is the absolute path, and on the local cluster, whose containers are
    processes that see their pod's files below the working directory's parent, it is the
    file the node agent reads."""
    message_file = os.path.relpath(TERMINATION_MESSAGE_PATH, workdir)
    # An image without this plugin (e.g. snakemake/snakemake, whose pods get only the
    # storage plugins installed) runs the command unrecorded: its row has no usage. The
    # check finds the package without importing it.
    probe = f"import importlib.util as u, sys; sys.exit(u.find_spec({PACKAGE!r}) is None)"
    return (
        f"python -c {shlex.quote(probe)} && "
        f"exec python -m {PACKAGE}.usage --message-file "
        f"{shlex.quote(message_file)} -- /bin/sh -c {shlex.quote(command)} || "
        f"exec /bin/sh -c {shlex.quote(command)}"
    )


@dataclass(frozen=True)
class JobRow:
    rule: str
    wildcards: str
    jobid: str
    attempt: int
    status: str  # "succeeded" | "failed"
    requested_cpu: float | None  # cores
    requested_mem_mb: float | None
    peak_mem_mb: float | None
    cpu_seconds: float | None
    wall_seconds: float | None
    node: str
    kubernetes_job: str
    usage_source: str  # "cgroup", "rusage", or "" when the pod reported nothing

    @property
    def cpu_efficiency(self) -> float | None:
        """CPU time over the CPU time the request reserved (cores x wall time)."""
        if not self.requested_cpu or not self.wall_seconds or self.cpu_seconds is None:
            return None
        return self.cpu_seconds / (self.requested_cpu * self.wall_seconds)

    def cells(self) -> list[str]:
        def number(value: float | None, digits: int) -> str:
            return "" if value is None else f"{value:.{digits}f}"

        return [
            self.rule,
            self.wildcards,
            self.jobid,
            str(self.attempt),
            self.status,
            number(self.requested_cpu, 3),
            number(self.requested_mem_mb, 0),
            number(self.peak_mem_mb, 1),
            number(self.cpu_seconds, 2),
            number(self.wall_seconds, 2),
            number(self.cpu_efficiency, 3),
            self.node,
            self.kubernetes_job,
            self.usage_source,
        ]


def _container(pod: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec, status) of the job container."""
    spec = next(
        (c for c in (pod.get("spec") or {}).get("containers") or [] if c["name"] == CONTAINER_NAME),
        {},
    )
    status = next(
        (
            s
            for s in (pod.get("status") or {}).get("containerStatuses") or []
            if s.get("name") == CONTAINER_NAME
        ),
        {},
    )
    return spec, status


def _quantity(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(parse_quantity(str(value)))
    except ValueError:
        return None


def pod_usage(pod: Mapping[str, Any]) -> Usage | None:
    _, status = _container(pod)
    terminated = (status.get("state") or {}).get("terminated") or {}
    return parse_message(terminated.get("message"))


# How long a Job that completed may wait for its pod's final status to reach the watch.
USAGE_WAIT_SECONDS = 5.0


def pod_is_final(pod: Mapping[str, Any] | None) -> bool:
    """Whether the pod's status is final: a terminal phase (its container statuses come with
    it), or the job container terminated."""
    if not pod:
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return True
    _, status = _container(pod)
    return "terminated" in (status.get("state") or {})


def usage_pod(
    named: Mapping[str, Any] | None, pods_of_job: list[dict[str, Any]]
) -> Mapping[str, Any] | None:
    """The pod whose terminated state carries the job's usage: the one the verdict named,
    else the Job's newest."""
    if named is not None:
        return named
    return pods_of_job[-1] if pods_of_job else None


class UsageWait:
    """The Job and Pod watches are separate streams: a Job's Complete condition may reach
    the cache before its pod's final status (about one job in ten on the local cluster).
    Such a job is reported a round later, when the pod's ending arrives (which wakes the
    next round at once), and after USAGE_WAIT_SECONDS without it: no API request either way."""

    def __init__(self, seconds: float = USAGE_WAIT_SECONDS) -> None:
        self.seconds = seconds
        self.since: dict[str, float] = {}

    def should_wait(self, job_name: str, pods: list[dict[str, Any]], now: float) -> bool:
        """`pods`: the Job's pods in the cache. None at all: nothing to wait for."""
        if not pods or any(pod_is_final(pod) for pod in pods):
            self.since.pop(job_name, None)
            return False
        first = self.since.setdefault(job_name, now)
        if now - first < self.seconds:
            return True
        self.since.pop(job_name, None)
        return False


def format_wildcards(wildcards: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in wildcards.items())


def job_row(
    rule: str,
    wildcards: Mapping[str, Any],
    jobid: int | str,
    status: str,
    kubernetes_job: str,
    pod: Mapping[str, Any] | None,
    attempt: int | None = None,
) -> JobRow:
    pod = pod or {}
    spec, _ = _container(pod)
    requests = (spec.get("resources") or {}).get("requests") or {}
    memory = _quantity(requests.get("memory"))
    usage = pod_usage(pod)
    if attempt is None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        try:
            attempt = int(labels.get(ATTEMPT_LABEL, 0))
        except ValueError:
            attempt = 0
    return JobRow(
        rule=rule,
        wildcards=format_wildcards(wildcards),
        jobid=str(jobid),
        attempt=attempt,
        status=status,
        requested_cpu=_quantity(requests.get("cpu")),
        requested_mem_mb=memory / MB if memory is not None else None,
        peak_mem_mb=(
            usage.peak_memory_bytes / MB
            if usage is not None and usage.peak_memory_bytes is not None
            else None
        ),
        cpu_seconds=usage.cpu_seconds if usage is not None else None,
        wall_seconds=usage.wall_seconds if usage is not None else None,
        node=(pod.get("spec") or {}).get("nodeName") or "",
        kubernetes_job=kubernetes_job,
        usage_source=usage.source if usage is not None else "",
    )


@dataclass(frozen=True)
class RuleSummary:
    rule: str
    jobs: int
    requested_mem_mb: float | None  # the largest request among its jobs
    peak_mem_mb: float | None  # the largest peak among its jobs
    cpu_efficiency: float | None  # total CPU time over total reserved CPU time

    @property
    def memory_share(self) -> float | None:
        if not self.requested_mem_mb or self.peak_mem_mb is None:
            return None
        return self.peak_mem_mb / self.requested_mem_mb

    @property
    def suggested_mem_mb(self) -> int | None:
        if self.peak_mem_mb is None:
            return None
        return max(1, math.ceil(self.peak_mem_mb * SUGGESTION_HEADROOM / 10) * 10)


def summarise(rows: Iterable[JobRow]) -> list[RuleSummary]:
    by_rule: dict[str, list[JobRow]] = {}
    for row in rows:
        by_rule.setdefault(row.rule, []).append(row)
    summaries = []
    for rule, jobs in sorted(by_rule.items()):
        requested = [r.requested_mem_mb for r in jobs if r.requested_mem_mb is not None]
        peaks = [r.peak_mem_mb for r in jobs if r.peak_mem_mb is not None]
        timed = [r for r in jobs if r.cpu_efficiency is not None]
        reserved = sum(r.requested_cpu * r.wall_seconds for r in timed)  # type: ignore[operator]
        used = sum(r.cpu_seconds for r in timed)  # type: ignore[misc]
        summaries.append(
            RuleSummary(
                rule=rule,
                jobs=len(jobs),
                requested_mem_mb=max(requested) if requested else None,
                peak_mem_mb=max(peaks) if peaks else None,
                cpu_efficiency=used / reserved if reserved else None,
            )
        )
    return summaries


def summary_lines(summaries: list[RuleSummary]) -> list[str]:
    """Three lines: memory most over-requested, most under-requested, CPU least used."""
    measured = [s for s in summaries if s.memory_share is not None]
    lines = []
    if measured:
        over = min(measured, key=lambda s: s.memory_share or 0.0)
        lines.append(
            f"Memory most over-requested: rule {over.rule} peaked at {over.peak_mem_mb:.0f} MB "
            f"of {over.requested_mem_mb:.0f} MB requested ({over.memory_share:.0%}, "
            f"{over.jobs} jobs); suggested mem_mb={over.suggested_mem_mb}"
        )
        under = max(measured, key=lambda s: s.memory_share or 0.0)
        if (under.memory_share or 0.0) >= UNDER_REQUESTED_SHARE:
            lines.append(
                f"Memory most under-requested: rule {under.rule} peaked at "
                f"{under.peak_mem_mb:.0f} MB of {under.requested_mem_mb:.0f} MB requested "
                f"({under.memory_share:.0%}); suggested mem_mb={under.suggested_mem_mb}"
            )
        else:
            lines.append(
                f"Memory most under-requested: none, every rule peaked below "
                f"{UNDER_REQUESTED_SHARE:.0%} of its mem_mb (highest: rule {under.rule}, "
                f"{under.memory_share:.0%})"
            )
    else:
        lines.append("Memory: no job with both a mem_mb request and a measured peak")
        lines.append("Memory most under-requested: nothing to compare")
    timed = [s for s in summaries if s.cpu_efficiency is not None]
    if timed:
        idle = min(timed, key=lambda s: s.cpu_efficiency or 0.0)
        lines.append(
            f"CPU least used: rule {idle.rule} used {idle.cpu_efficiency:.0%} of the cores it "
            "requested over its run time (lower its threads or ignore for I/O-bound rules)"
        )
    else:
        lines.append("CPU: no job reported its CPU time")
    return lines


def render_tsv(rows: Iterable[JobRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(row.cells())
    return out.getvalue()


def render_svg(summaries: list[RuleSummary]) -> str:
    """One row per rule: requested (outline) vs peak (filled) memory on a shared scale, and
    CPU efficiency on a 0-100% scale."""
    label_w, mem_w, cpu_w, gap, row_h, top = 170, 360, 200, 150, 26, 56
    width = label_w + mem_w + gap + cpu_w + 70
    height = top + row_h * max(1, len(summaries)) + 30
    scale_mb = (
        max(
            [s.requested_mem_mb or 0.0 for s in summaries]
            + [s.peak_mem_mb or 0.0 for s in summaries]
        )
        or 1.0
    )
    cpu_x = label_w + mem_w + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{label_w}" y="18" font-weight="bold">Memory: requested (outline), peak '
        "(filled)</text>",
        f'<text x="{cpu_x}" y="18" font-weight="bold">CPU efficiency</text>',
        f'<text x="{label_w}" y="36" fill="#555">scale 0 to {scale_mb:.0f} MB; peak from 90% '
        "of the request in red</text>",
        f'<text x="{cpu_x}" y="36" fill="#555">CPU time / (cores x wall time)</text>',
    ]
    for i, s in enumerate(summaries):
        y = top + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(s.rule)} ({s.jobs})</text>"
        )
        if s.requested_mem_mb:
            w = mem_w * s.requested_mem_mb / scale_mb
            parts.append(
                f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="16" fill="none" '
                'stroke="#1f5fa8" stroke-width="1.5"/>'
            )
        if s.peak_mem_mb is not None:
            w = mem_w * s.peak_mem_mb / scale_mb
            tight = (s.memory_share or 0.0) >= UNDER_REQUESTED_SHARE
            colour = "#c0392b" if tight else "#5b9bd5"
            parts.append(
                f'<rect x="{label_w}" y="{y + 6}" width="{w:.1f}" height="10" fill="{colour}"/>'
            )
        text = (
            f"{s.peak_mem_mb:.0f} / {s.requested_mem_mb:.0f} MB"
            if s.peak_mem_mb is not None and s.requested_mem_mb
            else (f"{s.peak_mem_mb:.0f} MB, no request" if s.peak_mem_mb is not None else "n/a")
        )
        parts.append(
            f'<text x="{label_w + mem_w + 8}" y="{y + 15}" font-size="11" '
            f'fill="#333">{escape(text)}</text>'
        )
        parts.append(f'<rect x="{cpu_x}" y="{y + 3}" width="{cpu_w}" height="16" fill="#eee"/>')
        if s.cpu_efficiency is not None:
            w = cpu_w * min(1.0, s.cpu_efficiency)
            parts.append(
                f'<rect x="{cpu_x}" y="{y + 3}" width="{w:.1f}" height="16" fill="#2e8b57"/>'
            )
            cpu_text = f"{s.cpu_efficiency:.0%}"
        else:
            cpu_text = "n/a"
        parts.append(f'<text x="{cpu_x + cpu_w + 6}" y="{y + 15}">{cpu_text}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(text)
    partial.replace(path)


def log_files(logger: Any) -> list[str]:
    """The files Snakemake logs to: its logger's file handlers (Snakemake adds the one of
    .snakemake/log/<timestamp>.snakemake.log directly to its logger)."""
    if not isinstance(logger, logging.Logger):
        return []
    return [h.baseFilename for h in logger.handlers if isinstance(h, logging.FileHandler)]


def report_base(log_files: Iterable[str], run_id: str) -> Path:
    """Where the report goes: beside Snakemake's log file (its name with the `.snakemake.log`
    suffix replaced), or in .snakemake/log/ when Snakemake writes no log file."""
    for log_file in log_files:
        path = Path(log_file)
        stem = path.name.removesuffix(".log").removesuffix(".snakemake")
        return path.with_name(f"{stem}.kubernetes-efficiency")
    stamp = datetime.now().isoformat(timespec="seconds").replace(":", "")
    return Path(".snakemake") / "log" / f"{stamp}.{run_id}.kubernetes-efficiency"


class EfficiencyReport:
    """Rows collected as jobs end; written once when the run ends."""

    def __init__(self) -> None:
        self.rows: list[JobRow] = []

    def add(self, row: JobRow) -> None:
        self.rows.append(row)

    def write(self, base: Path) -> tuple[Path, Path, list[str]]:
        """Write `<base>.tsv` and `<base>.svg`; return their paths and the summary lines."""
        base.parent.mkdir(parents=True, exist_ok=True)
        tsv, svg = base.with_name(base.name + ".tsv"), base.with_name(base.name + ".svg")
        summaries = summarise(self.rows)
        _write(tsv, render_tsv(self.rows))
        _write(svg, render_svg(summaries))
        return tsv, svg, summary_lines(summaries)
