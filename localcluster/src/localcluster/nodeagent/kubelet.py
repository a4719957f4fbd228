"""The kubelet part of the node agent: runs one bound pod's containers as local processes.

Each pod gets a fresh, empty root directory; workingDir and volume mountPaths are mapped
inside it, HOME and TMPDIR point inside it. Status, conditions and events follow the real
kubelet's shapes, which is what the executor plugin interprets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import math
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.errors import ApiError
from localcluster.nodeagent import podstatus, termination
from localcluster.nodeagent.images import Image, ImageBuildError, ImageCatalog, ImageNotFound
from localcluster.nodeagent.nodeobjects import now_rfc3339
from localcluster.nodeagent.podenv import (
    ContainerConfigError,
    container_env,
    expand_references,
    object_data,
)
from localcluster.nodeagent.processes import ContainerProcess
from localcluster.paths import log_path
from localcluster.quantity import parse_quantity

log = logging.getLogger("localcluster.nodeagent")

COMPONENT = "kubelet"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
UNKNOWN_STATUS_MESSAGE = "The container could not be located when the pod was terminated"


@dataclass
class KubeletTiming:
    """Retry and grace periods, shortened from the real kubelet's so tests stay quick."""

    grace_cap_seconds: float = 3.0
    config_retry_seconds: float = 1.0
    pull_backoff_initial: float = 1.0
    pull_backoff_max: float = 10.0
    restart_backoff_initial: float = 1.0
    restart_backoff_max: float = 10.0


@dataclass
class Termination:
    """Why the kubelet ends a pod early (deadline, eviction, node loss)."""

    reason: str
    message: str
    condition: tuple[str, str] | None = None  # DisruptionTarget (reason, message)
    # How killed containers end: "Error" when the kubelet kills them; when the node is gone
    # nobody saw them stop, so ContainerStatusUnknown.
    container_reason: str = "Error"


class PodGone(Exception):
    """The pod was deleted (or replaced by a namesake) while we worked on it."""


def qualified_image(image: str) -> str:
    """docker.io-qualified reference, as containerd reports it in pull errors."""
    name = image
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if rest else f"docker.io/library/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        name += ":latest"
    return name


@dataclass
class KubeletContext:
    """What every pod runner shares."""

    store: Any
    state_dir: Path
    images: ImageCatalog
    timing: KubeletTiming
    memory_watch: dict[int, tuple[ContainerProcess, int]] = field(default_factory=dict)


def is_sidecar(container: dict[str, Any]) -> bool:
    """An init container with restartPolicy Always is a native sidecar (1.29+ default)."""
    return container.get("restartPolicy") == "Always"


class PodRunner:
    """Lifecycle of one pod on one node, from ContainerCreating to a terminal phase."""

    def __init__(self, context: KubeletContext, pod: dict[str, Any], pod_ip: str) -> None:
        self.context = context
        self.pod = pod
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.pod_ip = pod_ip
        self.spec: dict[str, Any] = pod["spec"]
        self.restart_policy = self.spec.get("restartPolicy", "Always")
        self.processes: dict[str, ContainerProcess] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.init_statuses: dict[str, dict[str, Any]] = {}
        self.started = False
        self.initialized = not self.spec.get("initContainers")
        self.sandbox_ready = False
        self.phase = "Pending"
        self.termination: Termination | None = None
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.deadline_task: asyncio.Future[None] | None = None
        # Native sidecars (init containers with restartPolicy Always, Kubernetes 1.29+):
        # started in init order, kept running, stopped once the regular containers ended.
        self.sidecar_tasks: list[tuple[str, asyncio.Task[int | None]]] = []
        self.sidecar_started: dict[str, asyncio.Event] = {}
        self.stopping_sidecars = False

    # ----- paths ---------------------------------------------------------------------------
    @property
    def pod_dir(self) -> Path:
        return self.context.state_dir / "pods" / self.namespace / self.name

    @property
    def root(self) -> Path:
        return self.pod_dir / "root"

    def inside(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    # ----- control -------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod {self.namespace}/{self.name}")

    async def end(self, termination: Termination) -> None:
        """Stop the pod now and have it finish Failed with the given reason."""
        if self.termination is None:
            self.termination = termination
        self.stop_event.set()
        for process in list(self.processes.values()):
            process.signal_group(signal.SIGKILL)
        if self.task is not None:
            await asyncio.wait([self.task])

    async def deleted(self) -> None:
        """The pod object is gone: terminate gracefully, then drop its directory."""
        self.stop_event.set()
        grace = min(
            float(self.spec.get("terminationGracePeriodSeconds", 30)),
            self.context.timing.grace_cap_seconds,
        )
        for name, process in list(self.processes.items()):
            self._event("Killing", f"Stopping container {name}")
            await process.terminate(grace)
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait([self.task])
        shutil.rmtree(self.pod_dir, ignore_errors=True)

    def kill_now(self) -> None:
        self.stop_event.set()
        for process in list(self.processes.values()):
            process.signal_group(signal.SIGKILL)
        if self.task is not None:
            self.task.cancel()

    # ----- store writes ------------------------------------------------------------------
    def _event(self, reason: str, message: str, kind: str = "Normal") -> None:
        # Events are best effort, as in a real cluster (the namespace may be going away).
        with contextlib.suppress(ApiError):
            self.context.store.record_event(self.pod, reason, message, kind, COMPONENT)

    def _mutate(self, edit: Callable[[dict[str, Any]], None]) -> None:
        def guarded(pod: dict[str, Any]) -> None:
            if pod["metadata"].get("uid") != self.uid:
                raise PodGone()
            edit(pod)

        try:
            self.context.store.mutate("pods", self.namespace, self.name, guarded)
        except ApiError as error:
            if error.status == 404:
                raise PodGone() from error
            raise

    def _write_status(self) -> None:
        containers = self.spec.get("containers") or []
        init_containers = self.spec.get("initContainers") or []
        # Copies: the kubelet keeps editing its own status dicts, and the stored pod must
        # change only through the store (or watchers never hear of a new Waiting state).
        statuses = copy.deepcopy(
            [self.statuses[c["name"]] for c in containers if c["name"] in self.statuses]
        )
        init_statuses = copy.deepcopy(
            [
                self.init_statuses[c["name"]]
                for c in init_containers
                if c["name"] in self.init_statuses
            ]
        )
        terminal = self.phase in ("Succeeded", "Failed")
        unready = [
            c["name"] for c in containers if not self.statuses.get(c["name"], {}).get("ready")
        ]

        def edit(pod: dict[str, Any]) -> None:
            status = pod.setdefault("status", {})
            status["phase"] = self.phase
            status.setdefault("startTime", now_rfc3339())
            status["hostIP"] = "127.0.0.1"
            status["hostIPs"] = [{"ip": "127.0.0.1"}]
            if self.sandbox_ready or terminal:
                status["podIP"] = self.pod_ip
                status["podIPs"] = [{"ip": self.pod_ip}]
            if statuses:
                status["containerStatuses"] = statuses
            if init_statuses:
                status["initContainerStatuses"] = init_statuses
            podstatus.set_condition(pod, "PodReadyToStartContainers", self.sandbox_ready)
            if self.initialized:
                podstatus.set_condition(pod, "Initialized", True)
            else:
                pending = [c["name"] for c in init_containers]
                podstatus.set_condition(
                    pod,
                    "Initialized",
                    False,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(pending)}]",
                )
            if terminal:
                for kind in ("Ready", "ContainersReady"):
                    podstatus.set_condition(pod, kind, False, "PodCompleted")
            elif unready:
                message = f"containers with unready status: [{' '.join(unready)}]"
                podstatus.set_condition(
                    pod, "ContainersReady", False, "ContainersNotReady", message
                )
                podstatus.set_condition(pod, "Ready", False, "ContainersNotReady", message)
            else:
                podstatus.set_condition(pod, "ContainersReady", True)
                podstatus.set_condition(pod, "Ready", True)
            if self.termination is not None and terminal:
                status["reason"] = self.termination.reason
                status["message"] = self.termination.message
                if self.termination.condition:
                    reason, message = self.termination.condition
                    podstatus.set_condition(pod, "DisruptionTarget", True, reason, message)

        self._mutate(edit)

    # ----- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        except (PodGone, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("pod %s/%s: the kubelet gave up on it", self.namespace, self.name)
        finally:
            for process in self.processes.values():
                self.context.memory_watch.pop(process.pid, None)
                process.signal_group(signal.SIGKILL)

    async def _run(self) -> None:
        for container in self.spec.get("containers") or []:
            self.statuses[container["name"]] = podstatus.container_status(
                container, podstatus.waiting("ContainerCreating")
            )
        for container in self.spec.get("initContainers") or []:
            self.init_statuses[container["name"]] = podstatus.container_status(
                container, podstatus.waiting("PodInitializing")
            )
        # HOME and TMPDIR sit next to the root, so the working directory starts empty.
        for folder in (self.root, self.pod_dir / "home", self.pod_dir / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        deadline = self._start_deadline_timer()
        try:
            if await self._mount_volumes():
                self.sandbox_ready = True
                self._write_status()
                try:
                    if await self._run_init_containers():
                        self.initialized = True
                        await asyncio.gather(
                            *(self._run_container(c) for c in self.spec.get("containers") or [])
                        )
                finally:
                    await self._stop_sidecars()
        finally:
            if deadline is not None:
                deadline.cancel()
        self._finish()

    async def _stop_sidecars(self) -> None:
        """After the regular containers: SIGTERM the sidecars in reverse order of their start
        (KEP-753), each with the pod's grace period, as the kubelet does."""
        self.stopping_sidecars = True
        grace = min(
            float(self.spec.get("terminationGracePeriodSeconds", 30)),
            self.context.timing.grace_cap_seconds,
        )
        for name, task in reversed(self.sidecar_tasks):
            process = self.processes.get(name)
            if process is not None:
                self._event("Killing", f"Stopping container {name}")
                await process.terminate(grace)
            with contextlib.suppress(asyncio.CancelledError, PodGone):
                await task

    def _finish(self) -> None:
        self.sandbox_ready = False
        for statuses in (self.statuses, self.init_statuses):
            for status in statuses.values():
                if "terminated" not in status["state"] and self.termination is not None:
                    status["state"] = podstatus.terminated(
                        137, "ContainerStatusUnknown", None, UNKNOWN_STATUS_MESSAGE
                    )
                    status["ready"] = status["started"] = False
        if self.termination is not None:
            self.phase = "Failed"
        else:
            states = [status["state"] for status in self.statuses.values()]
            self.phase = podstatus.phase_from_states(states, "Never")
            if self.phase not in ("Succeeded", "Failed"):
                self.phase = "Failed"  # an init container failed for good
        self._write_status()

    def _start_deadline_timer(self) -> asyncio.TimerHandle | None:
        seconds = self.spec.get("activeDeadlineSeconds")
        if seconds is None:
            return None

        def expire() -> None:
            self._event("DeadlineExceeded", DEADLINE_MESSAGE)
            self.deadline_task = asyncio.ensure_future(
                self.end(Termination("DeadlineExceeded", DEADLINE_MESSAGE))
            )

        return asyncio.get_running_loop().call_later(float(seconds), expire)

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless the pod is being stopped; False when it is."""
        try:
            await asyncio.wait_for(self.stop_event.wait(), seconds)
        except TimeoutError:
            return True
        return False

    # ----- volumes -----------------------------------------------------------------------
    async def _mount_volumes(self) -> bool:
        """Create emptyDirs and write secret/configMap volumes; retries like FailedMount."""
        volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        mounts = [
            mount
            for container in (self.spec.get("initContainers") or [])
            + (self.spec.get("containers") or [])
            for mount in container.get("volumeMounts") or []
        ]
        while True:
            try:
                for mount in mounts:
                    self._mount(volumes.get(mount["name"]) or {}, mount)
                return True
            except ContainerConfigError as error:
                self._event("FailedMount", str(error), "Warning")
                self._write_status()  # ContainerCreating until the volumes can be set up
            if not await self._pause(self.context.timing.config_retry_seconds):
                return False

    def _mount(self, volume: dict[str, Any], mount: dict[str, Any]) -> None:
        target = self.inside(mount.get("mountPath", ""))
        target.mkdir(parents=True, exist_ok=True)
        for kind, key in (("secret", "secretName"), ("configMap", "name")):
            source = volume.get(kind)
            if source is None:
                continue
            resource = "secrets" if kind == "secret" else "configmaps"
            name = source.get(key, "")
            obj = self.context.store.get(resource, self.namespace, name)
            if obj is None:
                if source.get("optional"):
                    return
                raise ContainerConfigError(
                    f'MountVolume.SetUp failed for volume "{volume["name"]}" : '
                    f'{kind.lower()} "{name}" not found'
                )
            data = object_data(obj, kind.lower())
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] in data:
                    path = target / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(data[item["key"]])
            if kind == "configMap":
                for name_, value in (obj.get("binaryData") or {}).items():
                    (target / name_).write_bytes(base64.b64decode(value))

    # ----- containers --------------------------------------------------------------------
    async def _run_init_containers(self) -> bool:
        for container in self.spec.get("initContainers") or []:
            if is_sidecar(container):
                if not await self._start_sidecar(container):
                    return False
                continue
            code = await self._run_container(container, init=True)
            if code != 0:
                return False
        return True

    async def _start_sidecar(self, container: dict[str, Any]) -> bool:
        """Start a native sidecar and go on to the next init container once it runs."""
        name = container["name"]
        started = self.sidecar_started[name] = asyncio.Event()
        task = asyncio.create_task(self._run_container(container, init=True))
        self.sidecar_tasks.append((name, task))
        stopped = asyncio.create_task(self.stop_event.wait())
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait([stopped, waiting, task], return_when=asyncio.FIRST_COMPLETED)
        for helper in (stopped, waiting):
            helper.cancel()
        return started.is_set() and not self.stop_event.is_set()

    def _set_state(self, container: dict[str, Any], init: bool, **changes: Any) -> None:
        statuses = self.init_statuses if init else self.statuses
        status = statuses[container["name"]]
        status.update(changes)
        state = status["state"]
        status["ready"] = status["started"] = "running" in state and (
            not init or is_sidecar(container)
        )
        if init and "terminated" in state and state["terminated"]["exitCode"] == 0:
            status["ready"] = True

    async def _run_container(self, container: dict[str, Any], init: bool = False) -> int | None:
        """Run until the container is done for good; its last exit code (None if never ran)."""
        name = container["name"]
        restarts = 0
        backoff = self.context.timing.restart_backoff_initial
        while True:
            image = await self._pull(container, init)
            if image is None:
                return None
            prepared = await self._configure(container, init, image)
            if prepared is None:
                return None
            argv, cwd, env = prepared
            code = await self._execute(container, init, argv, cwd, env)
            if code is None:
                return None
            # Init containers only ever rerun after a failure, whatever the pod's policy.
            if is_sidecar(container):
                # A native sidecar restarts whatever it exits with, until the pod ends.
                restart = not self.stop_event.is_set() and not self.stopping_sidecars
            else:
                restart = not self.stop_event.is_set() and (
                    (self.restart_policy == "Always" and not init)
                    or (self.restart_policy != "Never" and code != 0)
                )
            if not restart:
                return code
            restarts += 1
            status = (self.init_statuses if init else self.statuses)[name]
            self._set_state(
                container,
                init,
                lastState=status["state"],
                restartCount=restarts,
                state=podstatus.waiting(
                    "CrashLoopBackOff",
                    f"back-off {int(backoff)}s restarting failed container={name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                ),
            )
            self._write_status()
            self._event("BackOff", "Back-off restarting failed container", "Warning")
            if not await self._pause(backoff):
                return code
            backoff = min(backoff * 2, self.context.timing.restart_backoff_max)

    async def _pull(self, container: dict[str, Any], init: bool) -> Image | None:
        image_name = container.get("image", "")
        backoff = self.context.timing.pull_backoff_initial
        while True:
            try:
                image = await self.context.images.resolve(image_name)
            except (ImageNotFound, ImageBuildError) as error:
                reference = qualified_image(image_name)
                if isinstance(error, ImageNotFound):
                    detail = (
                        f'failed to pull and unpack image "{reference}": failed to resolve '
                        f'reference "{reference}": {reference}: not found'
                    )
                else:
                    detail = f'failed to pull and unpack image "{reference}": {error}'
                message = f"rpc error: code = NotFound desc = {detail}"
                self._event("Pulling", f'Pulling image "{image_name}"')
                self._event("Failed", f'Failed to pull image "{image_name}": {message}', "Warning")
                self._event("Failed", "Error: ErrImagePull", "Warning")
                self._set_state(container, init, state=podstatus.waiting("ErrImagePull", message))
                self._write_status()
                if not await self._pause(backoff):
                    return None
                back_off = f'Back-off pulling image "{image_name}"'
                self._event("BackOff", back_off)
                self._event("Failed", "Error: ImagePullBackOff", "Warning")
                self._set_state(
                    container, init, state=podstatus.waiting("ImagePullBackOff", back_off)
                )
                self._write_status()
                if not await self._pause(backoff):
                    return None
                backoff = min(backoff * 2, self.context.timing.pull_backoff_max)
                continue
            if self.stop_event.is_set():
                return None
            if container.get("imagePullPolicy") == "Always":
                self._event("Pulling", f'Pulling image "{image_name}"')
                self._event(
                    "Pulled",
                    f'Successfully pulled image "{image_name}" in 0s (0s including waiting)',
                )
            else:
                self._event("Pulled", f'Container image "{image_name}" already present on machine')
            return image

    def _node_cpus(self) -> int | None:
        node = self.context.store.get("nodes", None, self.spec.get("nodeName") or "")
        try:
            cpu = parse_quantity(((node or {}).get("status") or {}).get("capacity", {})["cpu"])
        except (KeyError, ValueError):
            return None
        return max(1, math.ceil(cpu))

    def _base_env(self, image: Image) -> dict[str, str]:
        env = {
            "PATH": ":".join([*map(str, image.path_dirs), SYSTEM_PATH]),
            "HOSTNAME": self.name,
            "HOME": str(self.pod_dir / "home"),
            "TMPDIR": str(self.pod_dir / "tmp"),
            "LANG": "C.UTF-8",
            "VIRTUAL_ENV": str(image.venv),
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": " ".join(str(path) for path in image.wheelhouses),
            "PIP_CONFIG_FILE": "/dev/null",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        cpus = self._node_cpus()
        if cpus is not None:
            env["LOCALCLUSTER_NODE_CPUS"] = str(cpus)
        return env

    async def _configure(
        self, container: dict[str, Any], init: bool, image: Image
    ) -> tuple[list[str], Path, dict[str, str]] | None:
        """argv, working directory and environment; retries CreateContainerConfigError."""
        while True:
            try:
                declared = container_env(self.pod, container, self.context.store)
                break
            except ContainerConfigError as error:
                message = str(error)
                self._event("Failed", f"Error: {message}", "Warning")
                self._set_state(
                    container, init, state=podstatus.waiting("CreateContainerConfigError", message)
                )
                self._write_status()
            if not await self._pause(self.context.timing.config_retry_seconds):
                return None
        env = {**self._base_env(image), **declared}
        argv = [
            expand_references(str(part), declared)
            for part in (container.get("command") or []) + (container.get("args") or [])
        ]
        working_dir = container.get("workingDir")
        cwd = self.inside(working_dir) if working_dir else self.root
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, cwd, env

    async def _execute(
        self,
        container: dict[str, Any],
        init: bool,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
    ) -> int | None:
        name = container["name"]
        log_file = log_path(self.context.state_dir, self.namespace, self.name, name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.stop_event.is_set():
            return None
        self._event("Created", f"Created container: {name}")
        started_at = now_rfc3339()
        termination.prepare(self.root, container)
        try:
            if not argv:
                raise FileNotFoundError("no command specified")
            process = ContainerProcess(argv, cwd, env, log_file)
        except OSError as error:
            message = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                f'create failed: runc create failed: exec: "{argv[0] if argv else ""}": '
                f"{error.strerror or error}: unknown"
            )
            self._event("Failed", f"Error: {message}", "Warning")
            self._set_state(
                container, init, state=podstatus.terminated(128, "StartError", None, message)
            )
            self._write_status()
            return 128
        container_id = f"localcluster://{process.pid}"
        self.processes[name] = process
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is not None:
            self.context.memory_watch[process.pid] = (process, int(parse_quantity(limit)))
        self._event("Started", f"Started container {name}")
        self._set_state(
            container,
            init,
            state=podstatus.running(started_at),
            containerID=container_id,
            imageID=f"localcluster://{container.get('image', '')}",
        )
        if not init:
            self.started = True
            self.phase = "Running"
        self._write_status()
        if name in self.sidecar_started:
            self.sidecar_started[name].set()
        try:
            code = await process.wait()
        finally:
            self.context.memory_watch.pop(process.pid, None)
            self.processes.pop(name, None)
        reason = "Completed" if code == 0 else "Error"
        message = termination.read_message(self.root, container, log_file, code)
        if process.killed_for_memory:
            reason = "OOMKilled"
        elif self.termination is not None and self.termination.container_reason != "Error":
            reason, message = self.termination.container_reason, UNKNOWN_STATUS_MESSAGE
        self._set_state(
            container,
            init,
            state=podstatus.terminated(code, reason, started_at, message, container_id),
        )
        if not init and self._all_done():
            return code  # _finish writes the terminal status once
        self._write_status()
        return code

    def _all_done(self) -> bool:
        return all("terminated" in status["state"] for status in self.statuses.values())
