"""Throwaway TLS material for the API server: kubectl only sends bearer tokens over https."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServerTls:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_server_tls(directory: Path) -> ServerTls:
    """A fresh CA and a certificate for 127.0.0.1/localhost/::1; the key is owner-only."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="localcluster")
    issued = authority.issue_cert("127.0.0.1", "localhost", "::1")
    files = ServerTls(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    authority.cert_pem.write_to_path(str(files.ca_file))
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    fd = os.open(files.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(issued.private_key_pem.bytes())
    return files


def client_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))
