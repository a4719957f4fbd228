"""Turn Azure SDK errors into WorkflowErrors that say what to fix, without secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_azblob.credentials import ResolvedAuth

_SECRET_PARAMS_RE = re.compile(r"((?:sig|se|sv|sp|skoid|sktid|skt|ske|sks|skv)=)[^&\s'\"]*", re.I)
_KEY_RE = re.compile(r"(AccountKey=|SharedAccessSignature=)[^;\s'\"]*", re.I)


class AuthenticationFailed(WorkflowError):
    """Azure refused our credentials (401/403)."""


def scrub(text: str) -> str:
    """Remove SAS parameter values and keys from ``text``."""
    return _KEY_RE.sub(r"\1***", _SECRET_PARAMS_RE.sub(r"\1***", text))


def status_of(error: BaseException) -> int | None:
    return getattr(error, "status_code", None)


def error_code_of(error: BaseException) -> str | None:
    code = getattr(error, "error_code", None)
    if code:
        # The SDK sets a StorageErrorCode (a str enum whose str() is "StorageErrorCode.X")
        # or a plain string; Azure's own spelling is the enum's value.
        return str(getattr(code, "value", code))
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("x-ms-error-code")


def is_container_missing(error: ResourceNotFoundError) -> bool:
    """Whether a 404 says the container, not the blob, is missing."""
    return error_code_of(error) == "ContainerNotFound"


@contextmanager
def azure_errors(auth: ResolvedAuth, target: str) -> Iterator[None]:
    """Re-raise Azure errors from the block as WorkflowErrors naming ``target``.

    404s (ResourceNotFoundError) pass through unchanged: callers decide what "missing"
    means.
    """
    try:
        yield
    except (WorkflowError, ResourceNotFoundError):
        raise
    except AzureError as e:
        raise translate(e, auth, target) from None


def translate(error: AzureError, auth: ResolvedAuth, target: str) -> WorkflowError:
    status = status_of(error)
    code = error_code_of(error)
    if isinstance(error, ClientAuthenticationError) or status in (401, 403):
        detail = f"{status} {code}" if status else type(error).__name__
        return AuthenticationFailed(
            f"Azure Blob Storage refused access to {target} ({detail}) with "
            f"{auth.describe()}. Check that the credential is valid, not expired and "
            "allowed to perform this operation (secret values are not shown)."
        )
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return WorkflowError(
            f"Could not talk to Azure Blob Storage at {auth.account_url} for {target} after "
            f"retrying: {scrub(str(error).splitlines()[0] if str(error) else type(error).__name__)}"
        )
    if isinstance(error, HttpResponseError):
        message = scrub(getattr(error, "reason", None) or str(error).splitlines()[0])
        return WorkflowError(
            f"Azure Blob Storage request for {target} failed ({status} {code}): {message}"
        )
    return WorkflowError(f"Azure Blob Storage error for {target}: {scrub(str(error))}")
