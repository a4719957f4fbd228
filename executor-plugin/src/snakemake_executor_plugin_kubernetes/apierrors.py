"""The API client's errors: an error answer of the API server, or no usable answer at all.

Whether a failed request may be repeated depends on whether it may have been applied, so a
connection that could not be made (the request never left) is kept apart from an answer
lost on the way back (the server may have acted on it).
"""

from __future__ import annotations

import enum

import urllib3


class ErrorKind(enum.Enum):
    STATUS = "status"  # the API server answered with an error status
    CONNECT = "connect"  # no connection (refused, DNS, TLS handshake): the request never left
    READ = "read"  # sent, then the answer was lost, cut or garbled: it may have been applied


class ApiError(Exception):
    """A non-2xx answer of the API server; ``status`` is 0 when there was no answer."""

    kind = ErrorKind.STATUS

    def __init__(
        self, status: int, reason: str, message: str = "", retry_after: float | None = None
    ):
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class ApiConnectError(ApiError):
    """The connection could not be made: the request was never sent."""

    kind = ErrorKind.CONNECT

    def __init__(self, reason: str, message: str = ""):
        super().__init__(0, reason, message)


class ApiReadError(ApiError):
    """The request was sent but its answer (or a watch stream) was lost, cut or garbled."""

    kind = ErrorKind.READ

    def __init__(self, reason: str, message: str = ""):
        super().__init__(0, reason, message)


# urllib3's own split (Retry._is_connection_error): a connect timeout, a refused connection,
# a failed name lookup, a proxy or a TLS handshake failure happen before the request is
# written; everything else (ProtocolError for a connection closed mid-request, a read
# timeout) may come after the server got it.
_CONNECT_ERRORS = (
    urllib3.exceptions.ConnectTimeoutError,  # NewConnectionError, NameResolutionError too
    urllib3.exceptions.ProxyError,
    urllib3.exceptions.SSLError,
    ConnectionRefusedError,
)


def transport_error(error: BaseException) -> ApiError:
    """The client's error for a transport failure raised by urllib3 or the socket."""
    reason, message = type(error).__name__, str(error)
    if isinstance(error, _CONNECT_ERRORS):
        return ApiConnectError(reason, message)
    return ApiReadError(reason, message)
