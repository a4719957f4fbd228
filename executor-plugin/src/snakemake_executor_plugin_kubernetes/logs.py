"""Fetching and saving job pod logs."""

import re
from pathlib import Path

from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient, core_path
from snakemake_executor_plugin_kubernetes.template import CONTAINER_NAME

LOG_DIR = Path(".snakemake") / "logs" / "kubernetes"


def fetch_log(client: KubeClient, namespace: str, pod: str) -> str | None:
    """The pod's job container log, or None if there is none (yet/anymore)."""
    try:
        body = client.raw(
            "GET",
            core_path(namespace, "pods", pod) + "/log",
            query=[("container", CONTAINER_NAME)],
            read=True,  # a body lost on the way is retried, and an ApiError like the rest
        )
    except ApiError:
        return None
    return body.decode(errors="replace")


def save_log(job_name: str, text: str, directory: Path = LOG_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{job_name}.log"
    partial = path.with_suffix(".log.part")
    partial.write_text(text)
    partial.replace(path)
    return path


# Snakemake in the pod reports the rule's failed command like subprocess does.
_COMMAND_EXIT = re.compile(r"returned non-zero exit status (\d+)")


def command_exit_code(text: str) -> int | None:
    """Exit code of the rule's shell command as the job's Snakemake logged it, if any.

    The container's own exit code is Snakemake's (1), not the command's."""
    codes = _COMMAND_EXIT.findall(text)
    return int(codes[-1]) if codes else None


def tail(text: str, lines: int) -> str:
    if lines <= 0:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def kubectl_hints(namespace: str, job_name: str, pod: str | None) -> str:
    if pod:
        return (
            f"Inspect with: kubectl describe pod {pod} -n {namespace}; "
            f"kubectl logs {pod} -n {namespace}"
        )
    return f"Inspect with: kubectl describe job {job_name} -n {namespace}"
