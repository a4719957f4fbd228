"""Benchmarks: our plugins against snakemake-storage-plugin-azure 0.4.4,
snakemake-executor-plugin-kubernetes 0.5.1 and the raw azure-storage-blob SDK.

    python benchmarks/run.py                  # the issue's sizes (~35 min on 2 cores)
    python benchmarks/run.py --quick          # small sizes, a minute or two
    python benchmarks/run.py --only storage --size 256M --files 2000
    python benchmarks/run.py --link-mbps 50 --link-rtt-ms 5   # another shaped link

Everything runs on 127.0.0.1: Azurite and the local Kubernetes cluster. Transfers are
measured twice: straight to Azurite, and through a relay that gives every connection a
bandwidth and a round trip (linkshape.py), the way a remote Azure account behaves. The baselines
live in venvs of their own under .cache/bench-venvs/ (built on first use). Prints a
markdown table and writes the same as JSON to benchmarks/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from localcluster.azurite import start_azurite
from pluginbench import machine, storage_sides, targets, venvs
from pluginbench.linkshape import LinkModel, ShapedLink
from pluginbench.proxy import CountingProxy
from pluginbench.report import Results
from pluginbench.storage_bench import StorageBench, metadata_figures, transfer_figures
from pluginbench.timed_snakemake import EXECUTOR_STATE_VARIABLE, TRACE_MEMORY_VARIABLE

HERE = Path(__file__).resolve().parent

UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if text and text[-1] in UNITS:
            return int(float(text[:-1]) * UNITS[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size: cannot read {text!r} (e.g. 1G, 64M)") from None


def parse_sweep(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sdk-sweep: not a list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("--sdk-sweep: give positive integers, e.g. 1,4,8")
    return values


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["all", "storage", "executor"], default="all")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: 64M file, 500 inputs, 200 small files, 40 jobs",
    )
    parser.add_argument("--size", type=parse_size, help="large transfer size (default 1G)")
    parser.add_argument("--files", type=int, help="inputs of the metadata workflow (10000)")
    parser.add_argument("--small-files", type=int, help="files in the directory output (2000)")
    parser.add_argument("--jobs", type=int, help="jobs submitted at once, executor (1000)")
    parser.add_argument(
        "--complete-jobs", type=int, help="jobs of the executor run to completion (30; 0: skip)"
    )
    parser.add_argument(
        "--pending-jobs",
        type=int,
        help="jobs submitted at once to a cluster that can run none, ours only (10000; 0: skip)",
    )
    parser.add_argument(
        "--job-rate",
        default="100000/1s",
        help="Snakemake's --max-jobs-per-timespan in the submission phases, both sides "
        "(100000/1s; 'default' keeps Snakemake's 100/1s)",
    )
    parser.add_argument(
        "--snakemake-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for Snakemake in the submission phases, both sides; "
        "repeat it for each word (e.g. --snakemake-arg=--scheduler --snakemake-arg=greedy)",
    )
    parser.add_argument(
        "--api-latency-ms",
        type=int,
        default=0,
        help="also submit --jobs with every API request held this long by the local API "
        "server, without CPU (a remote API server's round trip), both sides (0: skip)",
    )
    parser.add_argument(
        "--shaped-size",
        type=parse_size,
        help="large transfer size over the shaped link (default 256M)",
    )
    parser.add_argument(
        "--link-mbps",
        type=float,
        default=25.0,
        help="shaped link: MB/s per connection and direction (25)",
    )
    parser.add_argument(
        "--link-rtt-ms", type=float, default=10.0, help="shaped link: round trip in ms (10)"
    )
    parser.add_argument(
        "--no-shaped-link",
        action="store_true",
        help="measure transfers on the direct link only",
    )
    parser.add_argument(
        "--sdk-sweep",
        type=parse_sweep,
        default=[1, 4, 16],
        help="max_concurrency values for the raw SDK (default 1,4,16)",
    )
    parser.add_argument(
        "--status-interval",
        type=int,
        default=2,
        help="--seconds-between-status-checks for both executors (2)",
    )
    parser.add_argument(
        "--observe-seconds",
        type=float,
        help="status checking observed at N active jobs (max(3 rounds, 30 s))",
    )
    parser.add_argument(
        "--pod-slots",
        type=int,
        default=2,
        help="pods the local cluster runs at once; each is a real process (2)",
    )
    parser.add_argument(
        "--skip-warmup",
        action="store_true",
        help="no unmeasured 2-job run first (then the first run may include image builds)",
    )
    parser.add_argument(
        "--keep-scratch",
        action="store_true",
        help="keep the scratch folder (logs of every run) and print its path",
    )
    parser.add_argument(
        "--skip-baselines",
        action="store_true",
        help="measure only ours and the raw SDK (no baseline venvs)",
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="run every Snakemake under tracemalloc and keep, in its scratch folder, where "
        "its memory was at its high (trace-memory.json); slows the executor phases, so "
        "their times are not figures (implies --keep-scratch)",
    )
    parser.add_argument(
        "--measure-executor-state",
        action="store_true",
        help="every 15 s, write the deep size of each attribute of the executor under test "
        "into its scratch folder (executor-state.json; implies --keep-scratch)",
    )
    parser.add_argument("--output", type=Path, help="JSON path (benchmarks/results/<time>.json)")
    args = parser.parse_args(argv)
    quick = {
        "size": parse_size("64M"),
        "shaped_size": parse_size("16M"),
        "files": 500,
        "small_files": 200,
        "jobs": 40,
        "complete_jobs": 4,
        "pending_jobs": 200,
    }
    full = {
        "size": parse_size("1G"),
        "shaped_size": parse_size("256M"),
        "files": 10_000,
        "small_files": 2_000,
        "jobs": 1_000,
        "complete_jobs": 30,
        "pending_jobs": 10_000,
    }
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("files", "small_files", "jobs", "pod_slots"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.pending_jobs < 0 or args.complete_jobs < 0:
        parser.error("--pending-jobs and --complete-jobs must be at least 0 (0: skip)")
    if args.job_rate == "default":
        args.job_rate = None
    if args.trace_memory or args.measure_executor_state:
        args.keep_scratch = True
    if args.size < 1024**2 or args.shaped_size < 1024**2:
        parser.error("--size and --shaped-size must be at least 1M")
    try:
        args.link = LinkModel(args.link_mbps * 1e6, args.link_rtt_ms / 1000)
    except ValueError as error:
        parser.error(f"--link-mbps/--link-rtt-ms: {error}")
    return args


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run_storage(args: argparse.Namespace, scratch: Path, results: Results) -> None:
    problems: dict[str, str] = {}
    azurite = start_azurite(scratch / "azurite")
    proxy = CountingProxy(azurite.port).start()
    try:
        container = f"bench-{uuid.uuid4().hex[:12]}"
        azurite.service_client().create_container(container)
        bench = StorageBench(
            azurite.blob_endpoint,
            proxy,
            azurite.account_name,
            azurite.account_key,
            container,
            scratch / "storage",
            log,
        )
        bench.scratch.mkdir()
        if (problem := storage_sides.our_plugin_problem()) is not None:
            problems["ours"] = problem
        if not args.skip_baselines:
            venvs.ensure(venvs.AZURE_STORAGE, log)

        def sides_at(url: str) -> dict[str, storage_sides.StorageSide | None]:
            return {
                "ours": storage_sides.ours(url, azurite.account_key) if problem is None else None,
                "azure": None
                if args.skip_baselines
                else storage_sides.azure_plugin(url, azurite.account_name, azurite.account_key),
            }

        metadata_figures(bench, sides_at(bench.proxied_url), args.files, results, problems)
        # Transfers go straight to Azurite: the proxy would be one more bottleneck.
        direct = sides_at(azurite.blob_endpoint)
        transfer_figures(
            bench, direct, args.size, args.sdk_sweep, args.small_files, results, problems
        )
        if not args.no_shaped_link:
            shaped_transfers(args, bench, sides_at, azurite.account_name, results, problems)
    finally:
        proxy.stop()
        azurite.stop()
    results.problems += [f"{name}: {text}" for name, text in problems.items()]
    targets.storage_targets(results)


def shaped_transfers(
    args: argparse.Namespace,
    bench: StorageBench,
    sides_at: Callable[[str], dict[str, storage_sides.StorageSide | None]],
    account_name: str,
    results: Results,
    problems: dict[str, str],
) -> None:
    """The transfer figures again, every side going through a link with a per-connection
    bandwidth and a round trip (see linkshape.py): what parallel connections buy."""
    log(f"transfers over the shaped link: {args.link.describe()}")
    results.details["shaped_link"] = args.link.describe()
    with ShapedLink(bench.proxy.upstream_port, args.link) as link:
        url = f"http://127.0.0.1:{link.port}/{account_name}"
        transfer_figures(
            dataclasses.replace(bench, account_url=url),
            sides_at(url),
            args.shaped_size,
            args.sdk_sweep,
            args.small_files,
            results,
            problems,
            link="the shaped link",
        )


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    # A benchmark stopped with SIGTERM stops its clusters and Azurite like one ended by ^C:
    # by default SIGTERM ends Python without running the `finally` blocks that do it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    command = shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    results = Results(
        machine=machine.describe(),
        command=command,
        parameters={
            k: (str(v) if isinstance(v, Path | LinkModel) else v) for k, v in vars(args).items()
        },
    )
    scratch = Path(tempfile.mkdtemp(prefix="snakemake-bench-"))
    # Inherited by every timed Snakemake.
    if args.trace_memory:
        os.environ[TRACE_MEMORY_VARIABLE] = "1"
    if args.measure_executor_state:
        os.environ[EXECUTOR_STATE_VARIABLE] = "1"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or HERE / "results" / f"{stamp}.json"
    try:
        if args.only in ("all", "storage"):
            run_storage(args, scratch, results)
            results.write_json(output)  # kept even if the executor part fails
        if args.only in ("all", "executor"):
            from pluginbench import executor_bench

            executor_bench.run_executor(args, scratch, results, log)
            targets.executor_targets(results)
            targets.scale_targets(results)
    finally:
        if args.keep_scratch:
            log(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results.details["total_seconds"] = round(time.monotonic() - started, 1)
    results.write_json(output)
    print(results.to_markdown())
    print(f"\n(total {results.details['total_seconds']} s; JSON: {output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
