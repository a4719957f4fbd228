"""In the pod: run the job's command, then write what it used to the termination message.

    python -m snakemake_executor_plugin_kubernetes.usage --message-file PATH -- COMMAND...

The kubelet copies the file at the container's `terminationMessagePath` into the
container's terminated state (`message`), which the executor already receives through its
watch: the efficiency report costs no API request. The message is one line of JSON, a few
hundred bytes, far below the kubelet's 4096-byte limit per container.

Peak memory and CPU time come from the container's own cgroup when the pod has one that
tells (cgroup v2 `memory.peak`, Linux 5.19+, and `cpu.stat`), since that is what the memory
limit is enforced against. Otherwise from
`getrusage(RUSAGE_CHILDREN)`: CPU time of the whole waited-for process tree, and the largest
resident set of any one process in it (the kernel keeps no sum over a tree).

Only the standard library is imported here, and the package's `__init__` loads the executor
lazily, so this wrapper costs a pod about 15 MB and 0.2 s (not 50 MB and 1 s). A launcher that runs
the job in its own process calls `record()` itself instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# The kubelet keeps at most this many bytes of a termination message (the last ones):
# kubecontainer.MaxContainerTerminationMessageLength in pkg/kubelet/container/runtime.go.
MAX_MESSAGE_BYTES = 4096
# Marks our message, so the executor never mistakes a user's own message for a report.
MESSAGE_KIND = "snakemake-usage/v1"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The kubelet's default terminationMessagePath; the executor renders it explicitly.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class Usage:
    peak_memory_bytes: int | None
    cpu_seconds: float
    wall_seconds: float
    exit_code: int
    source: str  # "cgroup" or "rusage"

    def to_message(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        text = json.dumps({"kind": MESSAGE_KIND, **fields}, separators=(",", ":"))
        if len(text.encode()) > MAX_MESSAGE_BYTES:  # cannot happen with these fields
            raise ValueError("usage message longer than the kubelet keeps")
        return text


def parse_message(text: str | None) -> Usage | None:
    """The usage a termination message carries, or None if it is not ours."""
    if not text or MESSAGE_KIND not in text:
        return None
    try:
        data = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    if not isinstance(data, dict) or data.get("kind") != MESSAGE_KIND:
        return None
    try:
        return Usage(
            peak_memory_bytes=(
                int(data["peak_memory_bytes"]) if "peak_memory_bytes" in data else None
            ),
            cpu_seconds=float(data["cpu_seconds"]),
            wall_seconds=float(data["wall_seconds"]),
            exit_code=int(data["exit_code"]),
            source=str(data.get("source", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def own_cgroup_v2(proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> bool:
    """Whether /sys/fs/cgroup is this container's own cgroup: cgroup v2 seen through a
    private cgroup namespace (containerd's default on cgroup v2), where the process's only
    cgroup is the namespace root "0::/". A process on a host, as on the local cluster, sees
    its real path (or v1 hierarchies), and the cgroup there would count other processes."""
    try:
        lines = proc_self_cgroup.read_text().split()
    except OSError:
        return False
    return lines == ["0::/"]


def cgroup_usage(root: Path = CGROUP_ROOT) -> tuple[int | None, float | None]:
    """(peak memory bytes, CPU seconds) of the container's cgroup v2; None where it cannot
    tell (memory.peak exists from Linux 5.19 on)."""
    peak = _read_int(root / "memory.peak")
    cpu = None
    try:
        for line in (root / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                cpu = int(value) / 1e6
    except (OSError, ValueError):
        pass
    return peak, cpu


def measure(
    started: float, exit_code: int, include_self: bool = False, root: Path | None = None
) -> Usage:
    """What the process tree used since `started` (a time.monotonic() value)."""
    wall = time.monotonic() - started
    who = [resource.RUSAGE_CHILDREN] + ([resource.RUSAGE_SELF] if include_self else [])
    usages = [resource.getrusage(w) for w in who]
    rusage_cpu = sum(u.ru_utime + u.ru_stime for u in usages)
    rusage_peak = max(u.ru_maxrss for u in usages) * 1024  # KiB on Linux
    if root is None:
        root = CGROUP_ROOT if own_cgroup_v2() else None
    cgroup_peak, cgroup_cpu = cgroup_usage(root) if root is not None else (None, None)
    if cgroup_peak is not None:
        cpu = cgroup_cpu if cgroup_cpu is not None else rusage_cpu
        return Usage(cgroup_peak, round(cpu, 3), round(wall, 3), exit_code, "cgroup")
    return Usage(rusage_peak or None, round(rusage_cpu, 3), round(wall, 3), exit_code, "rusage")


def write_message(path: Path, usage: Usage) -> None:
    """Write the message; a missing or read-only file must never change the job's outcome."""
    try:
        path.write_text(usage.to_message() + "\n")
    except OSError as e:
        print(f"usage: cannot write the termination message {path}: {e}", file=sys.stderr)


def record(message_file: str, started: float, exit_code: int, include_self: bool) -> None:
    """For a launcher that ran the job itself: measure and write the message."""
    write_message(Path(message_file), measure(started, exit_code, include_self=include_self))


def reap_orphans() -> None:
    """Wait for descendants that ended after their parent: as the container's first process
    the recorder inherits them, and only reaped processes count in RUSAGE_CHILDREN."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run(command: list[str], message_file: Path) -> int:
    """Run the command as a child, forwarding SIGTERM/SIGINT, and record its usage."""
    # Resolved now: the command may change the working directory the path is relative to.
    message_file = message_file.absolute()
    started = time.monotonic()
    child = subprocess.Popen(command)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    code = child.wait()
    exit_code = 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell
    reap_orphans()
    write_message(message_file, measure(started, exit_code))
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snakemake_executor_plugin_kubernetes.usage")
    parser.add_argument(
        "--message-file",
        required=True,
        type=Path,
        help="the container's terminationMessagePath (relative paths: to the working directory)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    return run(command, args.message_file)


if __name__ == "__main__":
    sys.exit(main())
