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
