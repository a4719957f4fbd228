"""MD5 of a download computed while it is written, so verifying needs no second pass.

The SDK's parallel download writes chunks in whatever order they arrive (seek, then write).
Chunks that extend the hashed prefix are hashed from memory; a chunk that arrives early is
only noted, and read back from the file once the prefix reaches it, so memory stays bounded
whatever the order.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

READ_BACK_SIZE = 4 * 1024 * 1024


class HashingWriter:
    """A seekable binary writer over ``sink`` (a file opened for reading and writing) that
    hashes the file's contiguous prefix."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._position = sink.tell()
        self._start = self._position
        self._md5 = hashlib.md5()
        self._hashed_to = self._position
        self._early: dict[int, int] = {}  # offset -> length of chunks beyond the prefix
        self._unusable = False

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._position = self._sink.seek(offset, whence)
        return self._position

    def write(self, data: bytes) -> int:
        written = self._sink.write(data)
        start, self._position = self._position, self._position + written
        if start == self._hashed_to:
            self._md5.update(memoryview(data)[:written])
            self._hashed_to += written
            self._catch_up()
        elif start > self._hashed_to:
            self._early[start] = max(written, self._early.get(start, 0))
        else:
            # bytes under the hashed prefix changed: the running hash no longer describes them
            self._unusable = True
        return written

    def flush(self) -> None:
        self._sink.flush()

    def _catch_up(self) -> None:
        if self._hashed_to not in self._early:
            return
        self._sink.flush()
        try:
            self._read_back(self._sink.fileno())
        except OSError:  # e.g. a sink opened write-only: the caller hashes the file instead
            self._unusable = True

    def _read_back(self, descriptor: int) -> None:
        while (length := self._early.pop(self._hashed_to, None)) is not None:
            end = self._hashed_to + length
            while self._hashed_to < end:
                piece = os.pread(
                    descriptor, min(READ_BACK_SIZE, end - self._hashed_to), self._hashed_to
                )
                if not piece:
                    self._unusable = True
                    return
                self._md5.update(piece)
                self._hashed_to += len(piece)

    def digest(self, size: int) -> bytes | None:
        """The MD5 of the ``size`` bytes written from the start, or None when the writes
        left a gap or changed hashed bytes (then hash the file instead)."""
        if self._unusable or self._early or self._hashed_to - self._start != size:
            return None
        return self._md5.digest()
