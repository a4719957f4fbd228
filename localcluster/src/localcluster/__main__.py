"""The ``localcluster`` command (also ``python -m localcluster``).

``localcluster serve --state-dir DIR [--port 0] [--nodes FILE.json] [--node-pools POOLS.json]
[--no-agent] [--plugin-source SRC ...]`` runs the API server, the controllers and (unless
--no-agent) the node agent in one asyncio loop on 127.0.0.1, then writes DIR/kubeconfig and
DIR/cluster.json ({"url", "pid"}). ``localcluster up|down|status`` manage a background dev
environment (Azurite and a cluster; see devenv.py).
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
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from localcluster import devenv
from localcluster.admission import Admission
from localcluster.controllers import GarbageCollector, JobController, QuotaController
from localcluster.kubeconfig import new_token, write_kubeconfig
from localcluster.nodeagent import ImageCatalog, NodeAgent
from localcluster.nodeagent.autoscaler import AutoscalerTiming
from localcluster.nodeagent.images import SOURCES_VARIABLE, sources_from_environment
from localcluster.nodepools import NodePool, load_pools
from localcluster.nodes import DEFAULT_NODES, NodeSpec, load_nodes
from localcluster.paths import cluster_info_path, kubeconfig_path
from localcluster.rbac import seed as seed_rbac
from localcluster.server import ClusterServer
from localcluster.store import Store
from localcluster.tls import make_server_tls

log = logging.getLogger("localcluster")


def _positive_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localcluster")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, purpose in (
        ("up", "start Azurite and a cluster in the background; write .dev/env.sh"),
        ("down", "stop them and remove .dev"),
        ("status", "say whether they run (exit status 0 when both do)"),
    ):
        devenv.add_arguments(commands.add_parser(name, help=purpose))
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
        "--plugin-source",
        type=Path,
        action="append",
        dest="plugin_sources",
        metavar="DIR",
        help=f"a Python project to install into the job images (repeatable; default: the "
        f"folders in {SOURCES_VARIABLE})",
    )
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
    return parser


def _make_agent(
    store: Store,
    nodes: list[NodeSpec] | None,
    pools: list[NodePool],
    state_dir: Path,
    args: argparse.Namespace,
) -> NodeAgent:

    timing = AutoscalerTiming(
        scan_interval=args.autoscaler_scan_interval,
        provision_seconds=args.autoscaler_provision_seconds,
        scale_down_unneeded_seconds=args.autoscaler_scale_down_unneeded_seconds,
    )
    catalog = ImageCatalog(args.plugin_sources or sources_from_environment())
    return NodeAgent(store, nodes, state_dir, catalog, pools=pools, autoscaler_timing=timing)


async def serve(
    args: argparse.Namespace,
    stopping: asyncio.Event | None = None,
    on_ready: Callable[[ClusterServer], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, or until ``stopping`` is set when given (then no signal
    handlers are installed, so that it can run on any thread: see inprocess.py)."""
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pools = load_pools(args.node_pools) if args.node_pools else []
    nodes = load_nodes(args.nodes) if args.nodes else None if pools else list(DEFAULT_NODES)
    store = Store(history_size=args.watch_history)
    agent = None if args.no_agent else _make_agent(store, nodes, pools, state_dir, args)
    token = new_token()
    server = ClusterServer(store, token, state_dir, args.bookmark_interval, agent)
    store.admission = Admission(store, service_account_tokens=server.rbac)
    seed_rbac(store)
    jobs = JobController(store, args.job_backoff_seconds, args.job_backoff_cap)
    garbage = GarbageCollector(store)
    quotas = QuotaController(store)
    runner = web.AppRunner(server.build_app(), handle_signals=False, access_log=None)
    await runner.setup()
    tls = make_server_tls(state_dir / "tls")
    server.rbac.ca_file = tls.ca_file
    site = web.TCPSite(
        runner, args.host, args.port, shutdown_timeout=1.0, ssl_context=tls.server_context()
    )
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"https://{args.host}:{port}"
    await jobs.start()
    await garbage.start()
    await quotas.start()
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
    if stopping is None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
    if on_ready is not None:
        on_ready(server)
    await stopping.wait()
    server.watches.close_all()
    try:
        if agent is not None:
            await agent.stop()  # kills pod processes: must happen even if others fail
    finally:
        await quotas.stop()
        await garbage.stop()
        await jobs.stop()
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            info.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command != "serve":
        return devenv.run(args.command, args, parser)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"--host {args.host}: the local cluster only listens on loopback")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(args))
    except ValueError as error:  # ImageConfigError among them: bad --plugin-source
        print(f"localcluster: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
