"""Local paths that exist but have no content to upload: named pipes, sockets, devices.

Snakemake's pipe() outputs are FIFOs and service() outputs are often sockets. Inside a
pod, Snakemake 9's final upload of a job's outputs (``DAG.store_storage_outputs``) does
not skip them as its per-job upload does, so the plugin must: opening a FIFO that no
process writes to blocks forever.
"""

from __future__ import annotations

import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def special_file_kind(path: Path) -> str | None:
    """What ``path`` is when it is neither a regular file nor a directory, else None
    (also None when it does not exist). Follows symlinks, as an upload would."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return None
