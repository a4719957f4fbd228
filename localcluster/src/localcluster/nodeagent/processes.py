"""Container processes: start a process group, await its exit cheaply, kill it, measure RSS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections import defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Indexes into /proc/PID/stat's fields after the parenthesised command name (proc(5)'s
# numbering minus 3): ppid 1, pgrp 2, utime 11 ... cstime 14, vsize 20, rss 21.
STAT_PPID = 1
STAT_PGRP = 2


def stats_of_process_groups(groups: Collection[int]) -> Iterator[tuple[int, int, list[bytes]]]:
    """(pid, pgrp, stat fields) of every live process in one of ``groups``."""
    wanted = set(groups)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        pgrp = int(fields[STAT_PGRP])
        if pgrp in wanted:
            yield int(entry.name), pgrp, fields


class ContainerProcess:
    """One container's main process, leader of its own process group."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log_file: Path) -> None:
        with log_file.open("ab") as log:
            # May raise FileNotFoundError/PermissionError: the caller reports StartError.
            self.popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self.pid = self.popen.pid
        self.killed_for_memory = False

    async def wait(self) -> int:
        """Exit code as the kubelet reports it: 128+N when killed by signal N."""
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            code = await asyncio.to_thread(self.popen.wait)
        else:
            exited = loop.create_future()
            loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
            code = self.popen.wait()
        # Processes the container left behind die with it, as when a container's cgroup goes.
        self.signal_group(signal.SIGKILL)
        return 128 - code if code < 0 else code

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def terminate(self, grace_seconds: float) -> None:
        """SIGTERM the group, SIGKILL it after the grace period."""
        if self.popen.poll() is not None:
            self.signal_group(signal.SIGKILL)
            return
        self.signal_group(signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + grace_seconds
        while self.popen.poll() is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        self.signal_group(signal.SIGKILL)


def memory_by_process_group(groups: Collection[int]) -> dict[int, int]:
    """Bytes each of ``groups`` holds, counted the way a memory cgroup charges them.

    A cgroup charges a page once, however many of its processes map it. Summing resident
    sets would count a forked child's copy-on-write pages twice, so a tool's launch (fork,
    then exec) could look like an out-of-memory kill for a moment. Each process counts its
    proportional share (Pss) instead, and a vfork child, which reports its parent's very
    address space until it execs, is not counted at all.
    """
    members: dict[int, tuple[int, int, bytes]] = {}  # pid: (ppid, pgrp, vsize and rss)
    for pid, pgrp, fields in stats_of_process_groups(groups):
        members[pid] = (int(fields[STAT_PPID]), pgrp, fields[20] + b" " + fields[21])
    totals: dict[int, int] = defaultdict(int)
    for pid, (ppid, pgrp, sizes) in members.items():
        parent = members.get(ppid)
        if parent is not None and parent[2] == sizes:
            continue  # not exec'd yet: the parent's address space, counted with the parent
        totals[pgrp] += _proportional_bytes(pid)
    return totals


def _proportional_bytes(pid: int) -> int:
    """The process's Pss: its private pages plus its share of pages it shares."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
