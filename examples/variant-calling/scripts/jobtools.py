"""Shared by the rule scripts: choosing pysam/pybwa or the binaries, running them, job logs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import TextIO

BINARIES = ("bwa", "samtools", "bcftools")


def use_binaries(mode: str) -> bool:
    """True when the rule should run bwa/samtools/bcftools instead of the Python wheels."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if mode == "python":
        return False
    if mode == "auto":
        return not missing
    if mode == "binaries":
        if missing:
            raise RuntimeError(
                f"config tools=binaries, but {', '.join(missing)} not found on PATH "
                "inside the job; use tools=python or an image with these programs"
            )
        return True
    raise ValueError(f"config 'tools' must be python, binaries or auto, got {mode!r}")


def open_log(path: str) -> TextIO:
    """Open the rule's log and record where the job ran (the e2e test checks the folder)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "w")  # noqa: SIM115 - closed by the caller's with-block
    log.write(f"host: {socket.gethostname()}\ncwd: {os.getcwd()}\n")
    log.flush()
    return log


def run(command: list[str], log: TextIO, stdout: Path | None = None) -> None:
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    if stdout is None:
        subprocess.run(command, stdout=log, stderr=log, check=True)
        return
    with stdout.open("wb") as handle:
        subprocess.run(command, stdout=handle, stderr=log, check=True)
