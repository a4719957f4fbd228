"""Start and stop Azurite (Microsoft's Azure Storage emulator) on 127.0.0.1.

Used by the dev environment (``localcluster up``), the pytest plugin, the demo and the
benchmarks. Azurite is found through ``AZURITE_BIN`` (``nox`` installs it from npm and sets
it) or ``PATH``. Telemetry is always disabled: the emulator must not talk to anything but
loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Azurite's well-known development account (public, documented by Microsoft).
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class AzuriteNotFound(RuntimeError):
    pass


def find_azurite_blob() -> str:
    """Return the path of the ``azurite-blob`` executable."""
    configured = os.environ.get("AZURITE_BIN")
    if configured:
        if not Path(configured).exists():
            raise AzuriteNotFound(f"AZURITE_BIN={configured}: no such file")
        return configured
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise AzuriteNotFound(
        "azurite-blob not found: run through nox (which installs Azurite from npm and sets "
        "AZURITE_BIN), set AZURITE_BIN, or put azurite-blob on PATH (npm install -g azurite)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class Azurite:
    """A running Azurite blob service."""

    port: int
    data_dir: Path
    https: bool = False
    oauth: bool = False
    cert_file: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    account_name: str = DEV_ACCOUNT_NAME
    account_key: str = field(default=DEV_ACCOUNT_KEY, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def blob_endpoint(self) -> str:
        """Account URL in Azurite's path style, e.g. http://127.0.0.1:PORT/devstoreaccount1."""
        return f"{self.scheme}://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def service_client(self, **kwargs):
        """A BlobServiceClient authenticated with the account key (for test setup)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.blob_endpoint,
            credential={"account_name": self.account_name, "account_key": self.account_key},
            **kwargs,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_azurite(
    data_dir: Path,
    *,
    port: int | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    oauth: bool = False,
    debug_log: Path | None = None,
    timeout: float = 60.0,
) -> Azurite:
    """Start ``azurite-blob`` on 127.0.0.1 with its data in ``data_dir``.

    With ``cert_file``/``key_file`` it serves https; ``oauth=True`` adds
    ``--oauth basic`` (bearer tokens, which Azurite accepts only over https).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    command = [
        find_azurite_blob(),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(data_dir),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
    ]
    if cert_file is not None:
        command += ["--cert", str(cert_file), "--key", str(key_file)]
    if oauth:
        command += ["--oauth", "basic"]
    if debug_log is not None:
        command += ["--debug", str(debug_log)]
    else:
        command.append("--silent")
    log = open(data_dir / "azurite.out", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, timeout, process)
    except Exception:
        process.kill()
        raise
    return Azurite(
        port=port,
        data_dir=data_dir,
        https=cert_file is not None,
        oauth=oauth,
        cert_file=cert_file,
        process=process,
    )
