"""``localcluster up|down|status [--root DIR] [--plugin-source SRC ...]``: a local dev
environment (also ``python -m localcluster.devenv up|down|status``).

``up`` starts Azurite and the local cluster in the background (reusing them when they already
run), builds the job images with the given plugin sources, and writes ``DIR/.dev/env.sh``.
After ``. .dev/env.sh``, ``snakemake --executor kubernetes --default-storage-provider azblob
--default-storage-prefix az://CONTAINER --jobs 4`` works in any folder. ``down`` stops both
and removes ``DIR/.dev``. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.accounts import ACCOUNT_NAME, write_executor_kubeconfig
from localcluster.azurite import (
    DEV_ACCOUNT_KEY,
    DEV_ACCOUNT_NAME,
    AzuriteNotFound,
    find_azurite_blob,
    free_port,
    wait_for_port,
)
from localcluster.control import ClusterControl
from localcluster.nodeagent.images import (
    SOURCES_VARIABLE,
    ImageCatalog,
    ImageConfigError,
    sources_from_environment,
)
from localcluster.nodepools import DEV_POOLS, pool_to_dict
from localcluster.paths import cluster_info_path, executor_kubeconfig_path, kubeconfig_path
from snakemake_executor_plugin_kubernetes.permissions import DIAGNOSIS_ROLE_NAME, ROLE_NAME

STARTUP_SECONDS = 60.0
STOP_SECONDS = 15.0
# The dev cluster's autoscaler, quicker than AKS's (nodes in 1-3 minutes, scale-down after
# 10 idle minutes) so that the tutorial's scale-up and scale-down show within a short demo.
DEV_SCALE_DOWN_UNNEEDED_SECONDS = 120
DEV_AUTOSCALER_ARGS = (
    "--autoscaler-scan-interval",
    "2",
    "--autoscaler-provision-seconds",
    "15",
    "--autoscaler-scale-down-unneeded-seconds",
    str(DEV_SCALE_DOWN_UNNEEDED_SECONDS),
)


@dataclass(frozen=True)
class DevPaths:
    root: Path  # the project folder (where `.dev` goes by default)
    dev: Path  # the environment's state (ROOT/.dev unless told otherwise)

    @property
    def state(self) -> Path:
        return self.dev / "state.json"

    @property
    def env_sh(self) -> Path:
        return self.dev / "env.sh"

    @property
    def bin(self) -> Path:
        return self.dev / "bin"

    @property
    def azurite(self) -> Path:
        return self.dev / "azurite"

    @property
    def cluster(self) -> Path:
        return self.dev / "cluster"


class DevEnvError(RuntimeError):
    pass


# ----- processes -------------------------------------------------------------------------
def _alive(pid: int | None, needle: str) -> bool:
    """The pid runs and its command line mentions needle (guards against pid reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return needle in cmdline and stat[stat.rindex(")") + 2] != "Z"


def _stop(pid: int | None, needle: str) -> bool:
    if not _alive(pid, needle):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while _alive(pid, needle) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid, needle):
        os.kill(pid, signal.SIGKILL)
    return True


def _spawn(
    command: list[str], log_file: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session so it outlives this command and its terminal."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=log_file.parent,
            start_new_session=True,
        )
    return process


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# ----- Azurite and the cluster -------------------------------------------------------------
def start_azurite(paths: DevPaths) -> dict[str, Any]:
    try:
        binary = find_azurite_blob()
    except AzuriteNotFound as error:
        raise DevEnvError(str(error)) from error
    port = free_port()
    paths.azurite.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(paths.azurite),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
    ]
    process = _spawn(command, paths.azurite / "azurite.out")
    try:
        wait_for_port(port, STARTUP_SECONDS, process)
    except (TimeoutError, RuntimeError) as error:
        process.kill()
        raise DevEnvError(f"Azurite: {error}\n{_tail(paths.azurite / 'azurite.out')}") from error
    return {"pid": process.pid, "port": port}


def start_cluster(
    paths: DevPaths,
    nodes_file: Path | None,
    catalog: ImageCatalog,
    pools_file: Path | None = None,
) -> dict[str, Any]:
    """Without a nodes or pools file: the seed's AKS cluster (DEV_POOLS), autoscaled."""
    info_file = cluster_info_path(paths.cluster)
    info_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "localcluster", "serve", "--state-dir", str(paths.cluster)]
    for source in catalog.plugin_sources:
        command += ["--plugin-source", str(source)]
    if nodes_file is not None:
        command += ["--nodes", str(nodes_file.resolve())]
    if pools_file is None and nodes_file is None:
        pools_file = paths.cluster / "node-pools.json"
        paths.cluster.mkdir(parents=True, exist_ok=True)
        pools_file.write_text(json.dumps([pool_to_dict(p) for p in DEV_POOLS], indent=2) + "\n")
    if pools_file is not None:
        command += ["--node-pools", str(pools_file.resolve()), *DEV_AUTOSCALER_ARGS]
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    log_file = paths.cluster / "server.log"
    process = _spawn(command, log_file, env)
    pid = process.pid
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        # Popen, not /proc: right after the spawn the child's cmdline may not show yet.
        if process.poll() is not None:
            raise DevEnvError(f"the local cluster exited during startup:\n{_tail(log_file)}")
        if info_file.exists():
            info = json.loads(info_file.read_text())
            if info.get("pid") == pid and _cluster_answers(info):
                return {"pid": pid, "url": info["url"], "ca_file": info.get("ca_file")}
        time.sleep(0.1)
    process.kill()
    raise DevEnvError(
        f"the local cluster did not start within {STARTUP_SECONDS}s:\n{_tail(log_file)}"
    )


def _cluster_answers(info: dict[str, Any]) -> bool:
    try:
        ClusterControl(info["url"], info.get("ca_file"), timeout=2).info()
    except Exception:  # not listening yet, or half started: the caller polls again
        return False
    return True


def _load_state(paths: DevPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.state.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    partial.replace(path)


def write_env(paths: DevPaths, azurite: dict[str, Any], image_bin: Path) -> None:
    """env.sh plus .dev/bin/snakemake, a wrapper for the image's Snakemake with both plugins."""
    paths.bin.mkdir(parents=True, exist_ok=True)
    wrapper = paths.bin / "snakemake"
    _write_atomically(
        wrapper, f'#!/bin/sh\nexec {shlex.quote(str(image_bin / "snakemake"))} "$@"\n', 0o755
    )
    endpoint = f"http://127.0.0.1:{azurite['port']}/{DEV_ACCOUNT_NAME}"
    exports = {
        # Snakemake, kubectl and the demo run as the executor's least-privilege account;
        # the admin kubeconfig stays available for cluster-wide looks (nodes, other namespaces).
        "KUBECONFIG": str(executor_kubeconfig_path(paths.cluster)),
        "LOCALCLUSTER_ADMIN_KUBECONFIG": str(kubeconfig_path(paths.cluster)),
        "SNAKEMAKE_STORAGE_AZBLOB_ENDPOINT_URL": endpoint,
        "SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY": DEV_ACCOUNT_KEY,
    }
    lines = ["# Written by `localcluster up` (`nox -s up`); source it: . .dev/env.sh"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]
    lines.append(f'export PATH={shlex.quote(str(paths.bin))}:"$PATH"')
    _write_atomically(paths.env_sh, "\n".join(lines) + "\n")


# ----- commands ----------------------------------------------------------------------------
def up(
    paths: DevPaths,
    nodes_file: Path | None,
    flavours: list[str],
    catalog: ImageCatalog,
    pools_file: Path | None = None,
) -> dict[str, Any]:
    paths.dev.mkdir(parents=True, exist_ok=True)
    images = {}
    for flavour in flavours:
        print(f"devenv: image {flavour!r} (built once, cached in {catalog.cache_dir})", flush=True)
        images[flavour] = catalog.build(flavour)
    state = _load_state(paths)
    azurite = state.get("azurite") or {}
    if _alive(azurite.get("pid"), "azurite"):
        print(f"devenv: reusing Azurite on 127.0.0.1:{azurite['port']}", flush=True)
    else:
        azurite = start_azurite(paths)
        print(f"devenv: started Azurite on 127.0.0.1:{azurite['port']}", flush=True)
    cluster = state.get("cluster") or {}
    if _alive(cluster.get("pid"), "localcluster") and _cluster_answers(cluster):
        print(f"devenv: reusing the local cluster at {cluster['url']}", flush=True)
    else:
        _stop(cluster.get("pid"), "localcluster")
        cluster = start_cluster(paths, nodes_file, catalog, pools_file)
        print(f"devenv: started the local cluster at {cluster['url']}", flush=True)
        if nodes_file is None and pools_file is None:
            for pool in DEV_POOLS:
                scaling = (
                    f"autoscaled {pool.min_count}-{pool.max_count} nodes"
                    if pool.autoscale
                    else f"{pool.min_count} node(s)"
                )
                print(f"devenv:   node pool {pool.name}: {pool.vm_size}, {scaling}", flush=True)
    account = write_executor_kubeconfig(
        kubeconfig_path(paths.cluster),
        executor_kubeconfig_path(paths.cluster),
        "default",
        diagnosis_reads=True,
    )
    print(
        f"devenv: {account.name}: ServiceAccount default/{ACCOUNT_NAME} bound to Role "
        f"{ROLE_NAME} (the executor's documented least privilege) and to the optional "
        f"reads {DIAGNOSIS_ROLE_NAME} (list nodes, the autoscaler's status)",
        flush=True,
    )
    state = {"azurite": azurite, "cluster": cluster}
    _write_atomically(paths.state, json.dumps(state, indent=2) + "\n")
    write_env(paths, azurite, images[flavours[0]].bin_dir)
    print(f"devenv: ready; run  . {paths.env_sh}", flush=True)
    return state


def down(paths: DevPaths) -> None:
    state = _load_state(paths)
    stopped = []
    if _stop((state.get("cluster") or {}).get("pid"), "localcluster"):
        stopped.append("local cluster")
    if _stop((state.get("azurite") or {}).get("pid"), "azurite"):
        stopped.append("Azurite")
    shutil.rmtree(paths.dev, ignore_errors=True)
    print(f"devenv: stopped {', '.join(stopped) or 'nothing (not running)'}; removed {paths.dev}")


def status(paths: DevPaths) -> int:
    state = _load_state(paths)
    azurite, cluster = state.get("azurite") or {}, state.get("cluster") or {}
    azurite_up = _alive(azurite.get("pid"), "azurite")
    cluster_up = _alive(cluster.get("pid"), "localcluster")
    print(f"Azurite: {'running on 127.0.0.1:' + str(azurite['port']) if azurite_up else 'stopped'}")
    print(f"local cluster: {'running at ' + cluster['url'] if cluster_up else 'stopped'}")
    return 0 if azurite_up and cluster_up else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `up`, `down` and `status` (shared with `localcluster up|down|status`)."""
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project folder")
    parser.add_argument("--dev-dir", type=Path, help="state folder (default: ROOT/.dev)")
    parser.add_argument("--nodes", type=Path, help="JSON list of nodes for a new cluster")
    parser.add_argument(
        "--plugin-source",
        type=Path,
        action="append",
        dest="plugin_sources",
        metavar="DIR",
        help=f"a Python project to install into the job images (repeatable; default: "
        f"the folders in {SOURCES_VARIABLE})",
    )
    parser.add_argument(
        "--node-pools",
        type=Path,
        help="JSON list of autoscaled node pools (default without --nodes: system + nodepool1)",
    )
    parser.add_argument(
        "--images",
        default="base,bio",
        help="image flavours to build ahead (comma-separated: base, bio)",
    )


def run(command: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    root = args.root.resolve()
    paths = DevPaths(root, (args.dev_dir or root / ".dev").resolve())
    flavours = [f.strip() for f in args.images.split(",") if f.strip()]
    unknown = sorted(set(flavours) - {"base", "bio"})
    if unknown or not flavours:
        parser.error(f"--images {args.images!r}: expected base and/or bio")
    try:
        if command == "up":
            sources = args.plugin_sources or sources_from_environment()
            up(paths, args.nodes, flavours, ImageCatalog(sources), args.node_pools)
        elif command == "down":
            down(paths)
        else:
            return status(paths)
    except (DevEnvError, ImageConfigError) as error:
        print(f"localcluster {command}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.devenv")
    parser.add_argument("command", choices=["up", "down", "status"])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args.command, args, parser)


if __name__ == "__main__":
    sys.exit(main())
