"""Blobs in the Archive access tier: offline until rehydrated, so reading one fails at
once with what to do, instead of a download that the service refuses (409 BlobArchived).

Rehydration times are Microsoft's (https://learn.microsoft.com/azure/storage/blobs/
archive-rehydrate-overview): up to 15 hours at Standard priority; at High priority
usually under an hour for blobs under 10 GB.
"""

from __future__ import annotations

from collections.abc import Iterable

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_azblob.listing import BlobEntry

ARCHIVE_TIER = "Archive"
ARCHIVED_ERROR_CODE = "BlobArchived"


class BlobArchived(WorkflowError):
    """A blob to read is in the Archive tier."""


def is_archived(entry: BlobEntry) -> bool:
    return (entry.tier or "").lower() == ARCHIVE_TIER.lower()


def archived_error(
    label: str, account: str, container: str, names: list[str], pending: str | None = None
) -> BlobArchived:
    """What to tell the user about ``names`` (blobs of ``label``) being archived."""
    if pending:
        return BlobArchived(
            f"cannot read {label}: {_which(names)} is being rehydrated from the Archive tier "
            f"({pending}); it can be read once rehydration finishes (up to 15 hours at "
            "Standard priority). Run the workflow again then."
        )
    command = (
        f"az storage blob set-tier --account-name {account} --container-name {container} "
        f"--name {names[0]} --tier Hot --rehydrate-priority High"
    )
    return BlobArchived(
        f"cannot read {label}: {_which(names)} is in the Archive access tier and must be "
        "rehydrated to an online tier (Hot, Cool or Cold) first, which takes up to 15 "
        "hours at Standard priority or usually under an hour at High priority. Rehydrate "
        f"in place with `{command}` (or copy it to an online tier with `az storage blob "
        "copy start --tier Hot ...`), then run the workflow again."
    )


def check_readable(label: str, account: str, container: str, entries: Iterable[BlobEntry]) -> None:
    """Raise :class:`BlobArchived` if any of ``entries`` is archived."""
    archived = [entry for entry in entries if is_archived(entry)]
    if archived:
        pending = next((e.archive_status for e in archived if e.archive_status), None)
        raise archived_error(label, account, container, [e.name for e in archived], pending)


def _which(names: list[str]) -> str:
    if len(names) == 1:
        return f"blob '{names[0]}'"
    shown = ", ".join(f"'{name}'" for name in names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"{len(names)} blobs ({shown}{more})"
