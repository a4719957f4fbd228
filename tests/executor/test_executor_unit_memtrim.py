"""After a re-list the executor gives the memory its decoding freed back to the system."""

from __future__ import annotations

import platform
import threading

from snakemake_executor_plugin_kubernetes.memtrim import give_back_freed_memory

MIB = 1 << 20


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_memory_a_thread_freed_goes_back_to_the_system():
    if platform.libc_ver()[0] != "glibc":
        assert give_back_freed_memory() is False  # musl, macOS: nothing to call
        return
    kept: list[bytes] = []

    def burst() -> None:
        # 64 MiB in blocks too large for Python's small-object allocator, all freed but the
        # last, which keeps glibc from shrinking the thread's heap from its top by itself.
        blocks = [bytes(4096) for _ in range(16384)]
        kept.append(blocks[-1])
        del blocks

    thread = threading.Thread(target=burst)
    thread.start()
    thread.join()
    before = rss_mib()
    assert give_back_freed_memory() is True
    after = rss_mib()
    assert before - after > 32, f"VmRSS {before:.1f} -> {after:.1f} MiB"
