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
    path: Path, server_url: str, token: str, ca_file: Path, namespace: str = "default"
) -> Path:
    """Write atomically (JSON is valid YAML) with owner-only permissions: it holds the token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(
                        Path(ca_file).read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": f"{CONTEXT_NAME}-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {
                    "cluster": CONTEXT_NAME,
                    "user": f"{CONTEXT_NAME}-admin",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": CONTEXT_NAME,
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
