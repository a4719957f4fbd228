"""Start ``python -m localcluster serve`` as a subprocess and wait until it answers.

The child runs with this interpreter, so it imports the same installed ``localcluster``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from localcluster.control import ClusterControl
from localcluster.nodepools import NodePool, pool_to_dict
from localcluster.nodes import NodeSpec
from localcluster.paths import cluster_info_path, kubeconfig_path
from localcluster.tls import client_context


@dataclass
class RunningCluster:
    url: str
    kubeconfig: Path
    ca_file: Path | None
    control: ClusterControl | None
    state_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient bound to this cluster."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def _node_dict(node: NodeSpec | dict[str, Any]) -> dict[str, Any]:
    if is_dataclass(node):
        data = asdict(node)
        data["taints"] = [dict(t) for t in data.get("taints", ())]
        return data
    return dict(node)


def start_cluster(
    state_dir: Path,
    nodes: Iterable[NodeSpec | dict[str, Any]] | None = None,
    agent: bool = True,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 120.0,
    env: dict[str, str] | None = None,
    plugin_sources: Sequence[Path] = (),
    pools: Iterable[NodePool | dict[str, Any]] | None = None,
) -> RunningCluster:
    """Run the cluster in a subprocess; its output goes to STATE_DIR/server.log. The node
    agent's images get ``plugin_sources`` (default: LOCALCLUSTER_PLUGIN_SOURCES)."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    info_file = cluster_info_path(state_dir)
    info_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "localcluster", "serve", "--state-dir", str(state_dir)]
    if nodes is not None:
        nodes_file = state_dir / "nodes.json"
        nodes_file.write_text(json.dumps([_node_dict(n) for n in nodes]))
        command += ["--nodes", str(nodes_file)]
    if pools is not None:
        pools_file = state_dir / "node-pools.json"
        pools_file.write_text(
            json.dumps([p if isinstance(p, dict) else pool_to_dict(p) for p in pools])
        )
        command += ["--node-pools", str(pools_file)]
    if not agent:
        command.append("--no-agent")
    for source in plugin_sources:
        command += ["--plugin-source", str(source)]
    command += list(extra_args)
    child_env = dict(os.environ if env is None else env)
    log_file = (state_dir / "server.log").open("ab")
    process = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, env=child_env, cwd=state_dir
    )
    log_file.close()
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"localcluster exited with code {process.returncode} during startup:\n"
                + _tail(state_dir / "server.log")
            )
        if info_file.exists():
            info = json.loads(info_file.read_text())
            if info.get("pid") == process.pid and _ready(info["url"], info.get("ca_file")):
                ca_file = Path(info["ca_file"]) if info.get("ca_file") else None
                return RunningCluster(
                    url=info["url"],
                    kubeconfig=kubeconfig_path(state_dir),
                    ca_file=ca_file,
                    control=ClusterControl(info["url"], ca_file),
                    state_dir=state_dir,
                    process=process,
                )
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(
        f"localcluster did not become ready within {startup_timeout}s:\n"
        + _tail(state_dir / "server.log")
    )


def _ready(url: str, ca_file: str | None) -> bool:
    context = client_context(Path(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2, context=context) as reply:
            return reply.status == 200
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"
