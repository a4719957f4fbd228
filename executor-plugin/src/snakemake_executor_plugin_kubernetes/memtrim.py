"""Giving freed memory back to the operating system after a re-list (glibc only).

A re-list decodes every Job and Pod of the run, a page at a time, on a watch thread. glibc
keeps what such a burst freed in that thread's malloc arena rather than returning it, so a
run's memory would step up at its first re-list and stay there. ``malloc_trim(0)`` returns
the free pages of every arena; it changes no allocator setting. Elsewhere (musl, macOS) it
does not exist and nothing is done.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def give_back_freed_memory() -> bool:
    """Return free heap memory to the system; False where the C library cannot."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
