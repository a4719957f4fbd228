"""``python -m localcluster serve --state-dir DIR [--port 0] [--nodes FILE.json]
[--node-pools POOLS.json] [--no-agent]``

Runs the API server, the controllers and (unless --no-agent) the node agent in one asyncio
loop on 127.0.0.1, then writes DIR/kubeconfig and DIR/cluster.json ({"url", "pid"}).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from localcluster.controllers import GarbageCollector, JobController
from localcluster.kubeconfig import new_token, write_kubeconfig
from localcluster.nodepools import NodePool, load_pools
from localcluster.nodes import DEFAULT_NODES, NodeSpec, load_nodes
from localcluster.paths import cluster_info_path, kubeconfig_path
from localcluster.server import ClusterServer
from localcluster.store import Store
from localcluster.tls import make_server_tls

log = logging.getLogger("localcluster")


def _positive_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcluster")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the local cluster until SIGTERM/SIGINT")
    serve.add_argument("--state-dir", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--nodes", type=Path, help="JSON list of nodes (NodeSpec fields)")
    serve.add_argument(
        "--node-pools",
        type=Path,
        help="JSON list of autoscaled AKS node pools (NodePool fields); with --nodes, both",
    )
    serve.add_argument(
        "--autoscaler-scan-interval",
        type=_positive_float,
        default=1.0,
        help="seconds between cluster-autoscaler scans (real: 10)",
    )
    serve.add_argument(
        "--autoscaler-provision-seconds",
        type=_positive_float,
        default=5.0,
        help="seconds from a scale-up to the new node's registration (AKS: 1-3 minutes)",
    )
    serve.add_argument(
        "--autoscaler-scale-down-unneeded-seconds",
        type=_positive_float,
        default=60.0,
        help="seconds a node stays empty before it is removed (real: 600)",
    )
    serve.add_argument("--no-agent", action="store_true", help="API server and controllers only")
    serve.add_argument(
        "--job-backoff-seconds",
        type=_positive_float,
        default=1.0,
        help="first delay before re-creating a failed Job pod, doubling per failure (real: 10)",
    )
    serve.add_argument("--job-backoff-cap", type=_positive_float, default=30.0)
    serve.add_argument(
        "--bookmark-interval", type=_positive_float, default=10.0, help="seconds between BOOKMARKs"
    )
    serve.add_argument("--watch-history", type=int, default=10000, help="events kept for resume")
    serve.add_argument("--log-level", default=os.environ.get("LOCALCLUSTER_LOG_LEVEL", "WARNING"))
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"--host {args.host}: the local cluster only listens on loopback")
    return args


def _make_agent(
    store: Store,
    nodes: list[NodeSpec] | None,
    pools: list[NodePool],
    state_dir: Path,
    args: argparse.Namespace,
) -> Any:
    try:
        from localcluster.nodeagent import ImageCatalog, NodeAgent
        from localcluster.nodeagent.autoscaler import AutoscalerTiming
    except ImportError as error:
        raise SystemExit(
            f"localcluster: the node agent (localcluster.nodeagent) cannot be imported ({error}); "
            "run with --no-agent to serve the API and controllers only"
        ) from error
    timing = AutoscalerTiming(
        scan_interval=args.autoscaler_scan_interval,
        provision_seconds=args.autoscaler_provision_seconds,
        scale_down_unneeded_seconds=args.autoscaler_scale_down_unneeded_seconds,
    )
    return NodeAgent(store, nodes, state_dir, ImageCatalog(), pools=pools, autoscaler_timing=timing)


async def serve(args: argparse.Namespace) -> None:
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pools = load_pools(args.node_pools) if args.node_pools else []
    nodes = load_nodes(args.nodes) if args.nodes else None if pools else list(DEFAULT_NODES)
    store = Store(history_size=args.watch_history)
    agent = None if args.no_agent else _make_agent(store, nodes, pools, state_dir, args)
    token = new_token()
    server = ClusterServer(store, token, state_dir, args.bookmark_interval, agent)
    jobs = JobController(store, args.job_backoff_seconds, args.job_backoff_cap)
    garbage = GarbageCollector(store)
    runner = web.AppRunner(server.build_app(), handle_signals=False, access_log=None)
    await runner.setup()
    tls = make_server_tls(state_dir / "tls")
    site = web.TCPSite(
        runner, args.host, args.port, shutdown_timeout=1.0, ssl_context=tls.server_context()
    )
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"https://{args.host}:{port}"
    await jobs.start()
    await garbage.start()
    if agent is not None:
        await agent.start()
    server.extra_info["nodes"] = (
        sorted(agent.node_specs) if agent is not None else [n.name for n in nodes or []]
    )
    write_kubeconfig(kubeconfig_path(state_dir), server.url, token, tls.ca_file)
    info = cluster_info_path(state_dir)
    partial = info.with_name(info.name + ".partial")
    partial.write_text(
        json.dumps({"url": server.url, "pid": os.getpid(), "ca_file": str(tls.ca_file)})
    )
    partial.replace(info)
    log.warning("localcluster serving %s (state %s)", server.url, state_dir)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.watches.close_all()
    try:
        if agent is not None:
            await agent.stop()  # kills pod processes: must happen even if others fail
    finally:
        await garbage.stop()
        await jobs.stop()
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            info.unlink()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(args))
    except ValueError as error:
        print(f"localcluster: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
