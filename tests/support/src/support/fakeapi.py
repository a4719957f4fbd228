"""A scripted in-memory Kubernetes API on 127.0.0.1 (transitional; do not use in new tests).

It only remains for tests/executor/test_executor_unit_submission.py (the submission pool's
tests, from a branch that merged separately) until they are ported to the local cluster's
in-process API server (``api_server`` with ``localcluster.testing.ApiDriver``, as the other
executor unit tests are); then this module and the ``server`` fixture go. Every other test
uses ``localcluster.testing`` for waits, faults and the request log.


Only what the executor uses: Jobs, Pods, Secrets (create/get/list/watch/patch/delete,
deletecollection), pod logs; plus a request log and fault injection. Tests drive pod and
Job status directly.
"""

from __future__ import annotations

import copy
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_PATH = re.compile(
    r"^/(?:api/v1|apis/batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>jobs|pods|secrets|configmaps)"
    r"(?:/(?P<name>[^/]+))?(?P<log>/log)?$"
)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int  # 0: drop the connection without answering
    count: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    token: str | None


def _selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if value:
            if labels.get(key) != value:
                return False
        elif key not in labels:
            return False
    return True


class FakeApi:
    def __init__(self, accepted_tokens: set[str] | None = None):
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 100
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.watchers: list[tuple[str, str | None, queue.Queue[Any]]] = []
        self.logs: dict[str, str] = {}
        self.accepted_tokens = accepted_tokens
        self.gone_next_watch = 0
        self.history: list[tuple[int, str, dict[str, Any]]] = []  # (rv, plural, event)

    # ----- state helpers used by tests -------------------------------------------------
    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def _emit(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        event = {"type": kind, "object": copy.deepcopy(obj)}
        self.history.append((self.rv, plural, event))
        for watched, selector, events in list(self.watchers):
            labels = obj["metadata"].get("labels") or {}
            if watched == plural and _selector_matches(selector, labels):
                events.put(event)

    def put(self, plural: str, obj: dict[str, Any], event: str = "MODIFIED") -> dict[str, Any]:
        with self.lock:
            obj = copy.deepcopy(obj)
            obj["metadata"].setdefault("uid", str(uuid.uuid4()))
            obj["metadata"].setdefault("namespace", "default")
            obj["metadata"].setdefault("creationTimestamp", f"2026-01-01T00:00:{self.rv % 60:02d}Z")
            self._bump(obj)
            self.objects[(plural, obj["metadata"]["name"])] = obj
            self._emit(plural, event, obj)
            return copy.deepcopy(obj)

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((plural, name))
            return copy.deepcopy(obj) if obj else None

    def mutate(self, plural: str, name: str, fn: Callable[[dict[str, Any]], None]) -> None:
        with self.lock:
            obj = self.objects[(plural, name)]
            fn(obj)
            self._bump(obj)
            self._emit(plural, "MODIFIED", obj)

    def remove(self, plural: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.pop((plural, name), None)
            if obj is not None:
                self._bump(obj)
                self._emit(plural, "DELETED", obj)
            return obj

    def names(self, plural: str) -> list[str]:
        with self.lock:
            return sorted(name for (p, name) in self.objects if p == plural)

    def end_watches(self) -> None:
        with self.lock:
            for _, _, events in self.watchers:
                events.put(None)

    def count(self, method: str, pattern: str = "") -> int:
        with self.lock:
            return sum(
                1 for r in self.requests if r.method == method and re.search(pattern, r.path)
            )

    def fail_next(self, method: str, path: str, status: int, count: int = 1, **headers: str):
        with self.lock:
            self.faults.append(Fault(method, re.compile(path), status, count, headers))

    # ----- request handling -------------------------------------------------------------
    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.method == method and fault.path.search(path):
                    fault.count -= 1
                    return fault
        return None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        auth = handler.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ") if auth else None
        with self.lock:
            self.requests.append(Logged(handler.command, url.path, query, body, token))
        fault = self._fault(handler.command, url.path)
        if fault is not None:
            if fault.status == 0:
                handler.close_connection = True
                handler.connection.shutdown(2)
                return
            return self._status(handler, fault.status, "injected", fault.headers)
        if self.accepted_tokens is not None and token not in self.accepted_tokens:
            return self._status(handler, 401, "Unauthorized")
        match = _PATH.match(url.path)
        if not match:
            return self._status(handler, 404, "NotFound")
        plural, name = match["plural"], match["name"]
        if match["log"]:
            text = self.logs.get(name)
            if text is None:
                return self._status(handler, 404, "NotFound")
            return self._send(handler, 200, text.encode(), "text/plain")
        method = handler.command
        if method == "GET" and name is None and query.get("watch") == "true":
            return self._watch(handler, plural, query)
        if method == "GET" and name is None:
            with self.lock:
                items = [
                    copy.deepcopy(o)
                    for (p, _), o in self.objects.items()
                    if p == plural
                    and _selector_matches(
                        query.get("labelSelector"), o["metadata"].get("labels") or {}
                    )
                ]
                meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
            if "limit" in query:  # pages in name order; the token is the next offset
                items.sort(key=lambda o: o["metadata"]["name"])
                start, limit = int(query.get("continue") or 0), int(query["limit"])
                if start + limit < len(items):
                    meta["continue"] = str(start + limit)
                items = items[start : start + limit]
            return self._json(handler, 200, {"items": items, "metadata": meta})
        if method == "GET":
            obj = self.get(plural, name)
            return self._json(handler, 200, obj) if obj else self._status(handler, 404, "NotFound")
        if method == "POST":
            if self.get(plural, body["metadata"]["name"]) is not None:
                return self._status(handler, 409, "AlreadyExists")
            return self._json(handler, 201, self.put(plural, body, "ADDED"))
        if method == "PUT":
            return self._json(handler, 200, self.put(plural, body))
        if method == "PATCH":
            if self.get(plural, name) is None:
                return self._status(handler, 404, "NotFound")
            assert handler.headers.get("Content-Type") == "application/merge-patch+json"

            def merge(obj: dict[str, Any]) -> None:
                for key, value in body.get("metadata", {}).items():
                    obj["metadata"][key] = value

            self.mutate(plural, name, merge)
            return self._json(handler, 200, self.get(plural, name))
        if method == "DELETE" and name is None:
            with self.lock:
                doomed = [
                    n
                    for (p, n), o in list(self.objects.items())
                    if p == plural
                    and _selector_matches(
                        query.get("labelSelector"), o["metadata"].get("labels") or {}
                    )
                ]
                for n in doomed:
                    self._delete(plural, n)
            return self._json(handler, 200, {"items": []})
        if method == "DELETE":
            if self._delete(plural, name) is None:
                return self._status(handler, 404, "NotFound")
            return self._json(handler, 200, {"status": "Success"})
        return self._status(handler, 405, "MethodNotAllowed")

    def _delete(self, plural: str, name: str) -> dict[str, Any] | None:
        obj = self.remove(plural, name)
        if obj is not None and plural == "jobs":  # background propagation, done at once
            for pod in self.names("pods"):
                owner = self.get("pods", pod)["metadata"].get("labels", {}).get("job-name")
                if owner == name:
                    self.remove("pods", pod)
        return obj

    def _watch(self, handler: BaseHTTPRequestHandler, plural: str, query: dict[str, str]) -> None:
        if self.gone_next_watch > 0:
            self.gone_next_watch -= 1
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Gone"}}
            handler.wfile.write(json.dumps(gone).encode() + b"\n")
            return
        events: queue.Queue[Any] = queue.Queue()
        selector = query.get("labelSelector")
        with self.lock:
            since = int(query.get("resourceVersion") or self.rv)
            for rv, kind, event in self.history:  # replay what the client missed
                labels = event["object"]["metadata"].get("labels") or {}
                if rv > since and kind == plural and _selector_matches(selector, labels):
                    events.put(event)
            self.watchers.append((plural, selector, events))
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.flush()
        try:
            while True:
                try:
                    event = events.get(timeout=float(query.get("timeoutSeconds", 30)))
                except queue.Empty:
                    return
                if event is None:
                    return
                handler.wfile.write(json.dumps(event).encode() + b"\n")
                handler.wfile.flush()
        except OSError:
            return
        finally:
            with self.lock:
                self.watchers.remove((plural, selector, events))

    def _json(self, handler: BaseHTTPRequestHandler, status: int, obj: Any) -> None:
        self._send(handler, status, json.dumps(obj).encode(), "application/json")

    def _status(
        self,
        handler: BaseHTTPRequestHandler,
        code: int,
        reason: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {
            "kind": "Status",
            "status": "Failure",
            "reason": reason,
            "code": code,
            "message": f"{reason} ({code})",
        }
        self._send(handler, code, json.dumps(body).encode(), "application/json", headers)

    def _send(self, handler, status, data, content_type, headers=None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)


class FakeApiServer:
    def __init__(self, api: FakeApi | None = None):
        self.api = api or FakeApi()
        fake = self.api

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # watches stream until the server closes

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                fake.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def write_kubeconfig(self, path: Path, token: str = "token-1") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": token}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    def stop(self) -> None:
        self.api.end_watches()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(condition: Callable[[], bool], what: str, tries: int = 400) -> None:
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.025)
    raise AssertionError(f"never happened: {what}")
