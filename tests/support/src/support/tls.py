"""Self-signed TLS material for https test servers (Azurite with ``--cert``/``--key``).

A throwaway certificate authority from ``trustme`` issues a server certificate for
127.0.0.1 and localhost. Clients trust it through ``ca_file`` (for example via
``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` or the SDK's ``connection_verify`` keyword).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_env(self) -> dict[str, str]:
        """Environment variables that make requests, aiohttp and ssl trust the CA."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_file), "SSL_CERT_FILE": str(self.ca_file)}


def make_server_tls(directory: Path, hosts: tuple[str, ...] = LOOPBACK_NAMES) -> TlsFiles:
    """Write a fresh CA certificate plus a server certificate and key for ``hosts``."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    server = authority.issue_cert(*hosts)
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server-cert.pem",
        key_file=directory / "server-key.pem",
    )
    authority.cert_pem.write_to_path(str(files.ca_file))
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(files.key_file))
    return files
