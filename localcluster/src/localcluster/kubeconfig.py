"""Writes the kubeconfig through which kubectl and the kubernetes client reach the cluster."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

CONTEXT_NAME = "localcluster"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_kubeconfig(
    path: Path,
    server_url: str,
    token: str,
    ca_file: Path | None,
    namespace: str = "default",
    user: str = f"{CONTEXT_NAME}-admin",
    context: str = CONTEXT_NAME,
    ca_data: bytes | None = None,
) -> Path:
    """Write atomically (JSON is valid YAML) with owner-only permissions: it holds the token."""
    ca = ca_data if ca_data is not None else Path(ca_file or "").read_bytes()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": CONTEXT_NAME, "user": user, "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2)
    partial.replace(path)
    return path
