"""Well-formed but unsigned bearer tokens for Azurite's ``--oauth basic`` mode, and a
recorder of the credential each SDK request carried.

Azurite (3.35, ``BlobTokenAuthenticator``) decodes the JWT without checking its
signature and requires: ``iat``, ``nbf`` and ``exp`` present with nbf <= now <= exp;
``iss`` starting with one of its Azure AD issuer prefixes (``https://sts.windows.net/``
...); ``aud`` equal to ``https://storage.azure.com[/]``, the storage app id
``e406a681-f3d4-42a8-90b6-c2b029497af1`` or ``https://<account>.blob.core.windows.net[/]``.
Tokens made here never leave 127.0.0.1 and grant nothing anywhere else.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.credentials import AccessToken

STORAGE_AUDIENCE = "https://storage.azure.com"
STORAGE_SCOPE = "https://storage.azure.com/.default"
TEST_TENANT = "00000000-0000-0000-0000-000000000001"
TEST_ISSUER = f"https://sts.windows.net/{TEST_TENANT}/"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(
    *,
    audience: str = STORAGE_AUDIENCE,
    issuer: str = TEST_ISSUER,
    lifetime: int = 3600,
    not_before_offset: int = -60,
) -> tuple[str, int]:
    """Return ``(token, expires_on)``; a negative ``lifetime`` makes an expired token."""
    now = int(time.time())
    expires_on = now + lifetime
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {
        "aud": audience,
        "iss": issuer,
        "iat": now + not_before_offset,
        "nbf": now + not_before_offset,
        "exp": expires_on,
        "tid": TEST_TENANT,
        "oid": "00000000-0000-0000-0000-0000000000aa",
        "sub": "snakemake-azblob-tests",
        "ver": "1.0",
    }
    parts = [_b64url(json.dumps(part).encode()) for part in (header, claims)]
    parts.append(_b64url(b"unsigned-test-signature"))
    return ".".join(parts), expires_on


@dataclass
class FakeTokenCredential:
    """A synchronous ``TokenCredential`` handing out Azurite-acceptable tokens.

    Records the scopes it was asked for so tests can assert what the plugin requested.
    """

    audience: str = STORAGE_AUDIENCE
    lifetime: int = 3600
    requested_scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        self.requested_scopes.append(scopes)
        token, expires_on = make_jwt(audience=self.audience, lifetime=self.lifetime)
        return AccessToken(token, expires_on)

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeTokenCredential:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


@dataclass
class FakeAsyncTokenCredential:
    """The ``AsyncTokenCredential`` twin of :class:`FakeTokenCredential`."""

    audience: str = STORAGE_AUDIENCE
    lifetime: int = 3600
    requested_scopes: list[tuple[str, ...]] = field(default_factory=list)

    async def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        self.requested_scopes.append(scopes)
        token, expires_on = make_jwt(audience=self.audience, lifetime=self.lifetime)
        return AccessToken(token, expires_on)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> FakeAsyncTokenCredential:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        pass


# -- Observing which credential each request carried ---------------------------------------
AuthKind = str  # "shared-key" | "bearer" | "sas" | "anonymous"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    auth: AuthKind


def classify_auth(headers: Mapping[str, str], url: str) -> AuthKind:
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if authorization.startswith("SharedKey"):
        return "shared-key"
    if authorization.startswith("Bearer"):
        return "bearer"
    if "sig=" in urlsplit(url).query:
        return "sas"
    return "anonymous"


@dataclass
class RequestRecorder:
    """Records every HTTP request the Azure SDK sends in this process, retries included.

    It wraps the azure-core transports (requests and aiohttp) at class level, so it sees
    requests of any client the plugin builds, whatever its pipeline.
    """

    requests: list[RecordedRequest] = field(default_factory=list)
    recording: bool = True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> RequestRecorder:
        from azure.core.pipeline.transport import AioHttpTransport, RequestsTransport

        sync_send = RequestsTransport.send
        async_send = AioHttpTransport.send

        def recording_send(transport: Any, request: Any, **kwargs: Any) -> Any:
            self._record(request)
            return sync_send(transport, request, **kwargs)

        async def recording_async_send(transport: Any, request: Any, **kwargs: Any) -> Any:
            self._record(request)
            return await async_send(transport, request, **kwargs)

        monkeypatch.setattr(RequestsTransport, "send", recording_send)
        monkeypatch.setattr(AioHttpTransport, "send", recording_async_send)
        return self

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave out the requests of the block (e.g. a test's own verification reads)."""
        self.recording = False
        try:
            yield
        finally:
            self.recording = True

    def _record(self, request: Any) -> None:
        if not self.recording:
            return
        auth = classify_auth(request.headers, request.url)
        self.requests.append(RecordedRequest(request.method, request.url, auth))

    def auth_kinds(self) -> set[AuthKind]:
        return {request.auth for request in self.requests}

    def clear(self) -> None:
        self.requests.clear()
