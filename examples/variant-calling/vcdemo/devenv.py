"""Read the environment `localcluster up` writes to REPO/.dev/env.sh."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

REQUIRED = (
    "KUBECONFIG",
    "SNAKEMAKE_STORAGE_AZBLOB_ENDPOINT_URL",
    "SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY",
)


class DevEnvironmentMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class DevEnvironment:
    variables: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return Path(self.variables["KUBECONFIG"])

    @property
    def admin_kubeconfig(self) -> Path | None:
        """The cluster admin's kubeconfig (may list nodes and events), when env.sh names it."""
        value = self.variables.get("LOCALCLUSTER_ADMIN_KUBECONFIG")
        return Path(value) if value else None

    @property
    def endpoint_url(self) -> str:
        return self.variables["SNAKEMAKE_STORAGE_AZBLOB_ENDPOINT_URL"]

    @property
    def account_key(self) -> str:
        return self.variables["SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY"]

    def path_with(self, current_path: str) -> str:
        """PATH as env.sh would set it, expanded against the caller's PATH."""
        return self.variables.get("PATH", current_path).replace("$PATH", current_path)


def parse_env_file(text: str) -> dict[str, str]:
    """Parse `export NAME=VALUE` / `NAME=VALUE` lines (shell quoting); ignore the rest."""
    variables: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep and name.isidentifier():
                value = value.replace("${PATH}", "$PATH")
                variables[name] = value
    return variables


def load_dev_environment(repo_root: Path) -> DevEnvironment:
    env_file = repo_root / ".dev" / "env.sh"
    hint = (
        f"start it with `nox -s up` (or `localcluster up --root {repo_root} --plugin-source ...`)"
    )
    if not env_file.is_file():
        raise DevEnvironmentMissing(f"{env_file} not found: the local cluster is not up; {hint}")
    variables = parse_env_file(env_file.read_text())
    missing = [name for name in REQUIRED if not variables.get(name)]
    if missing:
        raise DevEnvironmentMissing(f"{env_file} does not set {', '.join(missing)}; {hint}")
    return DevEnvironment(variables)
