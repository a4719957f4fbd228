"""A small JSON REST client for the Kubernetes API with retries and credential reload.

It reuses the official client's configuration loading (kubeconfig incl. exec plugins,
in-cluster service account) and transport, but sends and returns plain dicts.

The official client is imported only when a client is made: Snakemake imports every
installed executor plugin at start, so in each job pod a module-level import would cost
0.2 to 0.4 CPU-seconds (measured in the job image and in the test venv) for a package the
pod never uses.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3
from snakemake_interface_common.exceptions import WorkflowError

if TYPE_CHECKING:
    from kubernetes import client as k8s

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "snakemake-executor-plugin-kubernetes"
MERGE_PATCH = "application/merge-patch+json"
# Connections kept open: the submission pool (at most MAX_SUBMIT_WORKERS), two watches,
# status rounds and cleanup.
MAX_SUBMIT_WORKERS = 32
CONNECTION_POOL_SIZE = MAX_SUBMIT_WORKERS + 8


class ApiError(Exception):
    """A non-2xx answer of the API server (status 0: no answer at all)."""

    def __init__(
        self, status: int, reason: str, message: str = "", retry_after: float | None = None
    ):
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


def _shared_strings(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    intern = sys.intern
    return {
        intern(key): intern(value) if type(value) is str and len(value) <= 80 else value
        for key, value in pairs
    }


def decode_json(data: bytes | str) -> Any:
    """json.loads, with keys and short strings shared between objects.

    The watch cache holds every Job and Pod of the run: with 10,000 jobs, each object's
    own copies of the same keys, labels and values ("metadata", "snakemake.io/run-id",
    "Pending", ...) would be half of the executor's memory (a Pod takes 15 KB as parsed
    dicts, 7.7 KB with shared strings; parsing is about 15% slower).
    """
    return json.loads(data, object_pairs_hook=_shared_strings)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def load_configuration(kubeconfig: str | None, context: str | None) -> k8s.Configuration:
    """Kubeconfig (explicit, $KUBECONFIG or ~/.kube/config), else in-cluster."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    conf = k8s.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=conf, persist_config=False
        )
    except (ConfigException, OSError) as e:
        if kubeconfig or context:
            raise WorkflowError(
                f"Cannot load kubeconfig {kubeconfig or '(default)'} with context "
                f"{context or '(current)'} (settings --kubernetes-kubeconfig, "
                f"--kubernetes-context): {e}"
            ) from None
        try:
            k8s_config.load_incluster_config(client_configuration=conf, try_refresh_token=True)
        except ConfigException as e2:
            raise WorkflowError(
                "No Kubernetes configuration found: no kubeconfig ($KUBECONFIG, ~/.kube/config, "
                f"--kubernetes-kubeconfig) and not running in a cluster ({e2})."
            ) from None
    conf.retries = False  # this client retries itself, with backoff and Retry-After
    conf.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return conf


@dataclass
class Backoff:
    """Jittered exponential backoff, bounded by time rather than by a small count: an API
    server that throttles or restarts for a few minutes must not fail a 10,000-job run."""

    base: float = 0.5
    cap: float = 30.0
    max_attempts: int = 100
    max_retry_after: float = 120.0
    budget_seconds: float = 600.0

    def exhausted(self, attempt: int, slept: float) -> bool:
        return attempt + 1 >= self.max_attempts or slept >= self.budget_seconds

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return min(self.cap, self.base * 2**attempt) * random.uniform(0.5, 1.0)


class ThrottleGate:
    """A pause shared by every request of one client. A 429 is the API server's Priority
    and Fairness telling this client's flow to slow down: all its requests, on every
    thread, wait out the Retry-After, not just the one that was refused."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0
        self.holds = 0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)
            self.holds += 1

    def wait(self, sleep: Callable[[float], None]) -> float:
        """Sleep until the pause is over; returns the seconds asked for. A hold extended
        while sleeping is waited out too (each hold once, so an injected sleep that does
        not advance the clock still returns)."""
        slept = 0.0
        waited_for = None
        while True:
            with self._lock:
                until = self._until
                remaining = until - self._clock()
            if remaining <= 0 or until == waited_for:
                return slept
            sleep(remaining)
            slept += remaining
            waited_for = until


class KubeClient:
    def __init__(
        self,
        configuration_loader: Callable[[], k8s.Configuration],
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        request_timeout: tuple[float, float] = (10.0, 60.0),
    ):
        self._loader = configuration_loader
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._timeout = request_timeout
        self._swap_lock = threading.Lock()
        self.gate = ThrottleGate()
        self._api = self._new_api_client()
        self.credential_reloads = 0

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None = None, context: str | None = None, **kw: Any
    ) -> KubeClient:
        return cls(lambda: load_configuration(kubeconfig, context), **kw)

    def _new_api_client(self) -> k8s.ApiClient:
        from kubernetes import client as k8s

        api = k8s.ApiClient(self._loader())
        api.user_agent = USER_AGENT
        return api

    def _reload_credentials(self, stale: k8s.ApiClient) -> None:
        """Rebuild the configuration (re-runs exec plugins, rereads token files)."""
        fresh = self._new_api_client()  # outside the lock: may run an exec plugin
        with self._swap_lock:
            if self._api is stale:
                self._api = fresh
                self.credential_reloads += 1

    @property
    def api_client(self) -> k8s.ApiClient:
        with self._swap_lock:
            return self._api

    def _send(
        self,
        api: k8s.ApiClient,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None,
        body: Any,
        content_type: str | None,
        timeout: Any,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, body, _ = api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiError(0, type(e).__name__, str(e)) from None
        except ApiException as e:  # transport-level (e.g. TLS) failure
            raise ApiError(int(e.status or 0), str(e.reason or "error")) from None

    def _raise_for_status(self, response: Any) -> None:
        if 200 <= response.status < 300:
            return
        data = response.read()
        message = ""
        try:
            message = json.loads(data).get("message", "")
        except (ValueError, AttributeError):
            message = data[:200].decode(errors="replace") if data else ""
        raise ApiError(
            response.status, response.reason or "", message, _retry_after(response.headers)
        )

    def raw(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: Any = None,
        retry: bool = True,
        give_up: threading.Event | None = None,
    ) -> Any:
        """Send one request, retrying transient failures; returns the open response.
        Once ``give_up`` is set (e.g. the run is being cancelled), the next failure is final."""
        attempt = 0
        slept = 0.0
        reloaded = False
        while True:
            slept += self.gate.wait(self._sleep)
            api = self.api_client
            try:
                response = self._send(
                    api, method, path, query, body, content_type, timeout or self._timeout
                )
                self._raise_for_status(response)
                return response
            except ApiError as e:
                if e.status == 401 and not reloaded:
                    reloaded = True
                    self._reload_credentials(api)
                    continue
                retryable = e.status == 0 or e.status in RETRYABLE_STATUS
                if (
                    not retry
                    or not retryable
                    or self._backoff.exhausted(attempt, slept)
                    or (give_up is not None and give_up.is_set())
                ):
                    raise
                delay = self._backoff.delay(attempt, e.retry_after)
                if e.status == 429:
                    self.gate.hold(delay)  # waited out at the top, with every other request
                else:
                    self._sleep(delay)
                    slept += delay
                attempt += 1

    def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = self.raw(method, path, **kw)
        data = response.read()
        return decode_json(data) if data else {}

    def stream_lines(
        self, path: str, query: list[tuple[str, Any]], read_timeout: float
    ) -> Iterator[bytes]:
        """GET a streaming endpoint (a watch) once, without retries; yield its lines."""
        response = self.raw(
            "GET", path, query=query, timeout=(self._timeout[0], read_timeout), retry=False
        )
        raw = response.response
        pending = b""
        try:
            # read1 returns what has arrived (chunked or not); stream() would wait
            # for a full buffer on responses without chunked encoding.
            while chunk := raw.read1(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (line for line in lines if line.strip())
            if pending.strip():
                yield pending
        finally:
            raw.release_conn()

    def close(self) -> None:
        with self._swap_lock:
            api = self._api
        api.close()


def job_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    return f"{base}/{name}" if name else base


def core_path(namespace: str, plural: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base
