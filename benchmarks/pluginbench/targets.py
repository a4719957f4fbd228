"""The issue's performance targets, judged from the measured rows (reported, not asserted)."""

from __future__ import annotations

from pluginbench.report import Results, Row

METADATA_SHARE = 0.01
SDK_SHARE = 0.90
AZURE_FACTOR = 3.0
RSS_GROWTH = 1.2
EXECUTOR_SHARE = 0.10
NOTICE_SECONDS = 2.0


def find(results: Results, figure_part: str, baseline_start: str) -> Row | None:
    for row in results.rows:
        if figure_part in row.figure and row.baseline_name.startswith(baseline_start):
            return row
    return None


def ratio_target(results: Results, name: str, row: Row | None, passes) -> None:
    if row is None or row.ratio is None:
        results.target(name, "not measured", None)
        return
    results.target(name, f"{row.ratio:.3g}x ({row.ours} vs {row.baseline})", passes(row.ratio))


def storage_targets(results: Results) -> None:
    for row in results.rows:
        if row.figure.startswith("dry-run") and row.unit == "requests":
            ratio_target(
                results,
                f"metadata requests <= 1% of azure plugin ({row.figure[9:]})",
                row,
                lambda r: r <= METADATA_SHARE,
            )
    for link in ("", " over the shaped link"):
        for direction in ("upload", "download"):
            transfer_targets(results, direction + link)
    full = results.details.get("transfer_large", {}).get("ours")
    eighth = results.details.get("transfer_eighth_size", {}).get("ours")
    for direction in ("up", "down"):
        name = f"peak RSS flat in file size ({direction}: full size <= 1.2x eighth size)"
        if not full or not eighth:
            results.target(name, "not measured", None)
            continue
        big, small = full[direction]["peak_rss_mib"], eighth[direction]["peak_rss_mib"]
        results.target(name, f"{big} MiB vs {small} MiB", big <= RSS_GROWTH * small)


def transfer_targets(results: Results, figure_end: str) -> None:
    """Large-file throughput against the raw SDK's best and the azure plugin."""

    def large_row(baseline: str) -> Row | None:
        return next(
            (
                r
                for r in results.rows
                if r.unit == "MB/s"
                and r.figure.endswith(figure_end)
                and r.baseline_name.startswith(baseline)
            ),
            None,
        )

    if not any(r.figure.endswith(figure_end) for r in results.rows):
        return
    ratio_target(
        results,
        f"large {figure_end} >= 90% of raw SDK best",
        large_row("raw SDK"),
        lambda r: r >= SDK_SHARE,
    )
    ratio_target(
        results,
        f"large {figure_end} >= 3x azure plugin",
        large_row("azure 0.4.4"),
        lambda r: r >= AZURE_FACTOR,
    )


def executor_targets(results: Results) -> None:
    details = results.details.get("executor", {})
    rounds = details.get("requests_per_round_by_active_jobs")
    name = "executor requests per status round constant in active jobs"
    if rounds and len(rounds) >= 2:
        values = [phase["requests_per_round"] for phase in rounds]
        measured = ", ".join(
            f"{p['active_jobs']} active ({p['phase']}): {p['requests_per_round']}" for p in rounds
        )
        results.target(name, measured, max(values) <= min(values) + 1)
    else:
        results.target(name, "not measured", None)
    ratio_target(
        results,
        "executor total API requests <= 10% of existing plugin",
        find(results, "total API requests", "kubernetes 0.5.1"),
        lambda r: r <= EXECUTOR_SHARE,
    )
    ours = ((details.get("complete") or {}).get("ours")) or {}
    # Noticed = the executor reported the last job's success; Snakemake's own end of run
    # after that is a separate row ("last pod completion to exit").
    notice = ours.get("completion_report_s")
    name = "completion noticed within 2 s (last pod completion to its report)"
    if notice is None:
        results.target(name, "not measured", None)
    else:
        results.target(name, f"{notice:.2f} s", notice <= NOTICE_SECONDS)


SUBMIT_SHARE = 0.2
POD_CPU_SHARE = 0.5
PEAK_MB = 300


def scale_targets(results: Results) -> None:
    """Issue 20: submission speed, CPU per trivial pod, the executor at 10,000 Pending."""
    details = results.details.get("executor", {})
    submit = find(results, "jobs: time", "kubernetes 0.5.1")
    ratio_target(
        results,
        "submitting 1,000 jobs <= 0.2x of 0.5.1's time",
        submit,
        lambda r: r <= SUBMIT_SHARE,
    )
    distant = find(results, "ms API round trip: submission time", "kubernetes 0.5.1")
    if distant is not None:
        # The same target over a modelled network round trip (--api-latency-ms).
        ratio_target(
            results,
            "submitting 1,000 jobs <= 0.2x of 0.5.1's time, over --api-latency-ms",
            distant,
            lambda r: r <= SUBMIT_SHARE,
        )
    throttled = find(results, "jobs: 429 responses", "kubernetes 0.5.1")
    name = "no more 429 responses than 0.5.1 while submitting"
    if throttled is None or throttled.ours is None or throttled.baseline is None:
        results.target(name, "not measured", None)
    else:
        results.target(
            name,
            f"{throttled.ours} vs {throttled.baseline}",
            throttled.ours <= throttled.baseline,
        )
    ratio_target(
        results,
        "CPU-seconds per trivial pod <= 0.5x of two Python starts",
        find(results, "CPU time per pod", "ours, job-command shell"),
        lambda r: r <= POD_CPU_SHARE,
    )
    pending = (details.get("pending") or {}).get("ours") or {}
    rounds = details.get("requests_per_round_by_active_jobs") or []
    name = "requests per status round O(1) up to the Pending size"
    if pending and len(rounds) >= 2:
        values = [phase["requests_per_round"] for phase in rounds]
        measured = ", ".join(
            f"{phase['active_jobs']} active: {phase['requests_per_round']}" for phase in rounds
        )
        results.target(name, measured, max(values) <= min(values) + 1)
    else:
        results.target(name, "not measured", None)
    rss = pending.get("executor_peak_rss_mib")
    name = f"executor peak RSS <= {PEAK_MB} MB with {details.get('pending_jobs')} Pending"
    if rss is None:
        results.target(name, "not measured", None)
    else:
        megabytes = rss * 1024**2 / 1e6  # the row is in MiB, the bound in MB
        measured = f"{rss} MiB = {megabytes:.0f} MB"
        before = pending.get("rss_before_executor_mib")
        if before is not None:
            measured += f" ({before} MiB before the executor was made)"
        alone = ((details.get("pending") or {}).get("hold") or {}).get("executor_peak_rss_mib")
        if alone is not None:
            measured += f"; Snakemake alone holding the jobs: {alone} MiB"
        results.target(name, measured, megabytes <= PEAK_MB)
