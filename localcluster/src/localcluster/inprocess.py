"""The API server and controllers, without a node agent, on a thread of this process.

For unit tests of API clients (the executor's): the same server as ``localcluster serve
--no-agent``, ready in a fraction of a second because no interpreter has to start. Tests
drive pods by patching their status through the API, as a kubelet would.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from localcluster.__main__ import build_parser, serve
from localcluster.control import ClusterControl
from localcluster.launcher import RunningCluster
from localcluster.paths import cluster_info_path, kubeconfig_path

STARTUP_SECONDS = 30.0


class InProcessCluster:
    """``with InProcessCluster(state_dir, "--job-backoff-seconds", "0.05") as cluster:``"""

    def __init__(self, state_dir: Path, *serve_args: str) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.args = build_parser().parse_args(
            ["serve", "--state-dir", str(self.state_dir), "--no-agent", *serve_args]
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name="localcluster", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            await serve(self.args, self._stopping, self._started)

        try:
            asyncio.run(main())
        except BaseException as error:  # reported by start(); a thread must not die silently
            self._failure = error
            self._ready.set()

    def _started(self, server: Any) -> None:
        self._server = server
        self._ready.set()

    def start(self) -> RunningCluster:
        self._thread.start()
        if not self._ready.wait(STARTUP_SECONDS):
            raise RuntimeError(f"the in-process API server did not start in {STARTUP_SECONDS} s")
        if self._failure is not None:
            raise RuntimeError(f"the in-process API server failed: {self._failure!r}")
        ca_file = Path(json.loads(cluster_info_path(self.state_dir).read_text())["ca_file"])
        return RunningCluster(
            url=self._server.url,
            kubeconfig=kubeconfig_path(self.state_dir),
            ca_file=ca_file,
            control=ClusterControl(self._server.url, ca_file),
            state_dir=self.state_dir,
        )

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(STARTUP_SECONDS)

    def __enter__(self) -> RunningCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
