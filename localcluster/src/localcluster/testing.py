"""Helpers for tests that drive the local cluster: the one wait of the test suite, manifests,
pod outcomes, and ``ApiDriver``, which plays the kubelet on an agent-less cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

from localcluster.paths import log_path

if TYPE_CHECKING:
    from localcluster.launcher import RunningCluster

T = TypeVar("T")

# A hang guard for polling, not a performance bound: generous on a loaded 2-core runner.
WAIT_SECONDS = 30.0


def poll(probe: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """probe()'s first truthy answer, or its last answer once ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not (last := probe()) and time.monotonic() < deadline:
        time.sleep(interval)
    return last


def wait_until(
    probe: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS, interval: float = 0.05
) -> T:
    """Poll until probe() returns something truthy and return it; fail naming ``what``."""
    last = poll(probe, timeout, interval)
    if not last:
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
    return last


def container(name: str = "main", image: str = "snakemake/snakemake:v9", **extra: Any) -> dict:
    return {"name": name, "image": image, "command": ["true"], **extra}


def pod_manifest(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"restartPolicy": "Never", "containers": [container()], **spec},
    }


def job_manifest(name: str, **spec: Any) -> dict:
    template_spec = spec.pop("template_spec", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"restartPolicy": "Never", "containers": [container()], **template_spec},
            },
            **spec,
        },
    }


def finish_pod(
    core: Any,
    namespace: str,
    name: str,
    phase: str,
    exit_code: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
    container_name: str = "main",
) -> Any:
    """Play the kubelet: mark a pod Succeeded/Failed with a terminated container status."""
    code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": container_name,
                "image": "snakemake/snakemake:v9",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                    }
                },
            }
        ],
    }
    if conditions:
        status["conditions"] = conditions
    return core.patch_namespaced_pod_status(name, namespace, {"status": status})


def job_pods(core: Any, namespace: str, job: str, phase: str | None = None) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return [p for p in pods if phase is None or p.status.phase == phase]


def condition_types(job: Any) -> list[str]:
    return [c.type for c in (job.status.conditions or []) if c.status == "True"]


class ApiDriver:
    """A test's hands on an agent-less cluster: objects as plain dicts, the kubelet's part
    (bind a pod, set its status, write its log) and the request log with parsed queries."""

    listers = {
        "jobs": ("batch", "namespaced_job"),
        "pods": ("core", "namespaced_pod"),
        "secrets": ("core", "namespaced_secret"),
        "configmaps": ("core", "namespaced_config_map"),
    }

    def __init__(self, cluster: RunningCluster, namespace: str = "default") -> None:
        from kubernetes import client

        assert cluster.control is not None, "ApiDriver needs the local cluster's control API"
        self.cluster = cluster
        self.control = cluster.control
        self.namespace = namespace
        self.api_client = cluster.api_client()
        self.apis = {
            "core": client.CoreV1Api(self.api_client),
            "batch": client.BatchV1Api(self.api_client),
        }

    def _call(self, verb: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        """The client's ``{verb}_namespaced_{kind}``: (name, namespace) for one object,
        (namespace, body) to create, (namespace) to list."""
        group, suffix = self.listers[kind]
        method = getattr(self.apis[group], f"{verb}_{suffix}")
        args = (self.namespace, *args) if verb == "create" else (*args, self.namespace)
        return json.loads(method(*args, _preload_content=False, **kwargs).data)

    def names(self, kind: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self._call("list", kind)["items"])

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call("read", kind, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", kind, obj)

    def delete(self, kind: str, name: str) -> None:
        self._call("delete", kind, name)

    def pods_of(self, job: str) -> list[dict[str, Any]]:
        items = self._call("list", "pods", label_selector=f"job-name={job}")["items"]
        return sorted(items, key=lambda pod: pod["metadata"]["creationTimestamp"])

    def pod_of(self, job: str, count: int = 1) -> dict[str, Any]:
        """The newest pod the Job controller made for ``job``, once it made ``count``."""
        return wait_until(
            lambda: (pods := self.pods_of(job)) and len(pods) >= count and pods[-1],
            f"pod {count} of Job {job}",
        )

    def bind(self, pod: str, node: str = "node-1") -> None:
        target = {"apiVersion": "v1", "kind": "Node", "name": node}
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod}, "target": target}
        self.apis["core"].create_namespaced_pod_binding(
            pod, self.namespace, body, _preload_content=False
        )

    def set_pod_status(self, pod: str, **status: Any) -> dict[str, Any]:
        reply = self.apis["core"].patch_namespaced_pod_status(
            pod, self.namespace, {"status": status}, _preload_content=False
        )
        return json.loads(reply.data)

    def write_log(self, pod: str, text: str, container: str = "snakemake") -> Path:
        path = log_path(self.cluster.state_dir, self.namespace, pod, container)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def requests(self, method: str | None = None, path: str = "") -> list[dict[str, Any]]:
        """Logged API requests (query parsed into a dict), optionally of a method and a path
        ending."""
        return [
            {**record, "query": dict(parse_qsl(record["query"]))}
            for record in self.control.requests()
            if (method is None or record["method"] == method) and record["path"].endswith(path)
        ]

    def close(self) -> None:
        self.api_client.close()
