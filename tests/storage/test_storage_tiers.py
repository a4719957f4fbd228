"""Access tiers: uploads in the configured tier, and archived blobs refused at once with
how to rehydrate them (Azurite implements tiers and answers reads of archived blobs with
409 BlobArchived, as Azure does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_azblob.archive import BlobArchived, check_readable
from snakemake_storage_plugin_azblob.listing import BlobEntry
from snakemake_storage_plugin_azblob.requestlog import REQUEST_LOG_ENV

# Azurite comes through conftest, the one module here that names where its launcher lives.
from .conftest import Azurite, ProviderFactory

KIB = 1024
CREDENTIAL_ENV_PREFIXES = ("SNAKEMAKE_STORAGE_AZBLOB_", "AZ_BLOB_", "AZURE_STORAGE_")


def stored_tier(azurite: Azurite, container: str, name: str) -> str:
    properties = azurite.service_client().get_blob_client(container, name).get_blob_properties()
    return str(properties.blob_tier)


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("tier", ["Cool", "cold", "HOT"])
def test_uploads_go_to_the_configured_tier(
    make_provider: ProviderFactory, azurite: Azurite, container: str, tier: str
) -> None:
    provider = make_provider(access_tier=tier, block_size=64 * KIB)
    single = provider.object(f"az://{container}/tiered/small.txt")
    blocks = provider.object(f"az://{container}/tiered/large.bin")
    directory = provider.object(f"az://{container}/tiered/dir")
    write(single.local_path(), b"small")
    write(blocks.local_path(), bytes(200 * KIB))  # four blocks and a commit
    write(directory.local_path() / "member.txt", b"member")

    for obj in (single, blocks, directory):
        obj.store_object()

    assert provider.request_log.count("PUT blocklist") == 1
    for name in ("tiered/small.txt", "tiered/large.bin", "tiered/dir/member.txt"):
        assert stored_tier(azurite, container, name).lower() == tier.lower()


def test_without_a_tier_uploads_take_the_accounts_default(
    provider, azurite: Azurite, container: str
) -> None:
    obj = provider.object(f"az://{container}/default/tier.txt")
    write(obj.local_path(), b"x")

    obj.store_object()

    properties = azurite.service_client().get_blob_client(container, "default/tier.txt")
    assert properties.get_blob_properties().blob_tier_inferred is True


@pytest.mark.parametrize(
    ("value", "reason"),
    [("Archive", "jobs could not read their inputs"), ("warm", "choose one of Hot, Cool, Cold")],
)
def test_a_tier_that_cannot_serve_jobs_is_refused_before_any_request(
    make_provider: ProviderFactory, value: str, reason: str
) -> None:
    with pytest.raises(WorkflowError, match="access_tier") as raised:
        make_provider(access_tier=value)

    assert reason in str(raised.value)


def archived_blob(azurite: Azurite, container: str, name: str) -> None:
    blob = azurite.service_client().get_blob_client(container, name)
    blob.upload_blob(b"cold data", overwrite=True)
    blob.set_standard_blob_tier("Archive")


def test_reading_an_archived_blob_fails_at_once_saying_how_to_rehydrate(
    provider, azurite: Azurite, container: str
) -> None:
    archived_blob(azurite, container, "frozen/reads.fq")
    obj = provider.object(f"az://{container}/frozen/reads.fq")

    with pytest.raises(BlobArchived) as raised:
        obj.retrieve_object()

    message = str(raised.value)
    assert f"az://{container}/frozen/reads.fq" in message
    assert "blob 'frozen/reads.fq' is in the Archive access tier" in message
    assert f"--container-name {container} --name frozen/reads.fq --tier Hot" in message
    assert provider.request_log.snapshot()["by_operation"] == {"HEAD": 1}  # no download
    assert not obj.local_path().exists()


def test_a_blob_archived_after_it_was_looked_at_is_refused_by_the_service_without_retry(
    provider, azurite: Azurite, container: str
) -> None:
    blob = azurite.service_client().get_blob_client(container, "late/frozen.txt")
    blob.upload_blob(b"was hot", overwrite=True)
    obj = provider.object(f"az://{container}/late/frozen.txt")
    assert obj.exists()  # the snapshot says Hot
    blob.set_standard_blob_tier("Archive")

    with pytest.raises(BlobArchived, match="rehydrate"):
        obj.retrieve_object()

    assert provider.request_log.count("GET") == 1  # the refused download, not retried
    assert list(obj.local_path().parent.iterdir()) == []


def test_a_directory_with_archived_members_names_them_before_downloading(
    provider, azurite: Azurite, container: str
) -> None:
    service = azurite.service_client().get_container_client(container)
    service.upload_blob("mixed/online.txt", b"online")
    for i in range(5):
        archived_blob(azurite, container, f"mixed/cold{i}.txt")
    obj = provider.object(f"az://{container}/mixed")

    with pytest.raises(BlobArchived) as raised:
        obj.retrieve_object()

    assert "5 blobs ('mixed/cold0.txt', 'mixed/cold1.txt', 'mixed/cold2.txt' and 2 more)" in str(
        raised.value
    )
    assert provider.request_log.count("GET") == 0
    assert not obj.local_path().exists()


def test_a_blob_being_rehydrated_says_to_wait_for_it() -> None:
    entry = BlobEntry("r/x.txt", 1, 1.0, tier="Archive", archive_status="rehydrate-pending-to-hot")

    with pytest.raises(BlobArchived) as raised:
        check_readable("az://c/r/x.txt", "acct", "c", [entry])

    assert "being rehydrated from the Archive tier (rehydrate-pending-to-hot)" in str(raised.value)
    check_readable("az://c/r/y.txt", "acct", "c", [BlobEntry("r/y.txt", 1, 1.0, tier="Cool")])


# -- through Snakemake's command line ----------------------------------------------------------
TIERS_SNAKEFILE = Path(__file__).parent / "workflows" / "tiers" / "Snakefile"


def run_copy(azurite: Azurite, container: str, workdir: Path, target: str, *extra: str):
    """``snakemake TARGET`` with azblob as the default storage; returns the run and its
    request totals (from the request log every provider writes at exit)."""
    log = workdir / "requests.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_ENV_PREFIXES)}
    env |= {"SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY": azurite.account_key, REQUEST_LOG_ENV: str(log)}
    command = [
        sys.executable, "-m", "snakemake", target,
        "--snakefile", str(TIERS_SNAKEFILE),
        "--directory", str(workdir),
        "--cores", "1",
        "--nocolor",
        "--default-storage-provider", "azblob",
        "--default-storage-prefix", f"az://{container}",
        "--storage-azblob-endpoint-url", azurite.blob_endpoint,
        *extra,
    ]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    operations: dict[str, int] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        for operation, count in json.loads(line)["by_operation"].items():
            operations[operation] = operations.get(operation, 0) + count
    return run, operations


@pytest.mark.timeout(300)
def test_the_tier_option_on_snakemakes_command_line_places_outputs(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    blob = azurite.service_client().get_blob_client(container, "raw/hot.txt")
    blob.upload_blob(b"hot data")

    run, _ = run_copy(
        azurite, container, tmp_path, "out/hot.txt", "--storage-azblob-access-tier", "Cool"
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert stored_tier(azurite, container, "out/hot.txt") == "Cool"
    assert stored_tier(azurite, container, "raw/hot.txt") == "Hot"


@pytest.mark.timeout(300)
def test_a_workflow_over_an_archived_input_stops_at_once_with_how_to_rehydrate(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    archived_blob(azurite, container, "raw/cold.txt")

    run, operations = run_copy(azurite, container, tmp_path, "out/cold.txt")

    assert run.returncode != 0
    assert f"az://{container}/raw/cold.txt" in run.stderr
    assert "is in the Archive access tier" in run.stderr
    assert "az storage blob set-tier" in run.stderr
    assert operations.get("GET", 0) == 0, operations  # no download was tried
    names = [b.name for b in azurite.service_client().get_container_client(container).list_blobs()]
    assert names == ["raw/cold.txt"]
