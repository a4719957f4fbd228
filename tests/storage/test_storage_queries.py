"""Query forms: validation with reasons, round trips, local paths and safe printing."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider
from snakemake_storage_plugin_azblob.query import parse_query

VALID = [
    "az://my-container/path/to/file.txt",
    "az://abc/x",
    "az://9lives/{sample}/{sample}.bam",
    "az://{bucket}-data/file.txt",
    "az://$web/index.html",
    "https://myaccount.blob.core.windows.net/data/reads/s1.fq.gz",
    "https://myaccount.blob.core.chinacloudapi.cn/data/x.txt",
    "https://myaccount.privatelink.blob.core.windows.net/data/x.txt",
    "https://myaccount.blob.core.windows.net/data/x.txt?sv=2024-05-04&sig=abc%3D",
    "http://127.0.0.1:10000/devstoreaccount1/data/x.txt",
    "http://localhost:10000/devstoreaccount1/data/{sample}.txt",
    "az://c0c/" + "/".join(["d"] * 254),
    "az://c0c/" + "n" * 1024,
    "abfss://data@myaccount.dfs.core.windows.net/reads/s1.fq.gz",
    "abfs://data@myaccount.dfs.core.windows.net/reads/{sample}.fq.gz",
    "ABFSS://data@MyAccount.dfs.core.usgovcloudapi.net/x.txt",
]

INVALID = [
    ("s3://bucket/key", "scheme 's3://'"),
    ("gs://bucket/key", "scheme 'gs://'"),
    ("/local/path.txt", "az://"),
    ("az://", "no container"),
    ("az://container", "no blob path"),
    ("az://container/", "no blob path"),
    ("az://Upper/x", "container name"),
    ("az://ab/x", "3 to 63"),
    ("az://" + "a" * 64 + "/x", "3 to 63"),
    ("az://double--dash/x", "single"),
    ("az://-lead/x", "start and end"),
    ("az://under_score/x", "lowercase"),
    ("az://data/a//b", "empty segments"),
    ("az://data//abs/path.txt", "local()"),
    ("https://acct.blob.core.windows.net/c0c/sv=1&sig=abc", "SAS signature"),
    ("az://data/a/../b", "'..'"),
    ("az://data/./b", "'.'"),
    ("az://data/dir/", "must not end with '/'"),
    ("az://data/file.", "must not end with '.'"),
    ("az://data/a\\b", "backslash"),
    ("az://data/x?sig=abc", "sas_token"),
    ("az://data/x\ty", "control characters"),
    ("az://c0c/" + "n" * 1025, "at most 1024"),
    ("az://c0c/" + "/".join(["d"] * 255), "at most 254"),
    ("https://example.com/data/x.txt", "not an Azure blob endpoint"),
    ("https://myaccount.blob.core.windows.net/data", "no blob path"),
    ("https://myaccount.blob.core.windows.net/", "no container"),
    ("https://My_Account.blob.core.windows.net/data/x", "account name"),
    ("http://127.0.0.1:10000/devstoreaccount1", "no container"),
    ("https://user:pw@myaccount.blob.core.windows.net/data/x", "user name"),
    ("abfss://myaccount.dfs.core.windows.net/data/x", "no container before '@'"),
    ("abfss://data:pw@myaccount.dfs.core.windows.net/x", "no container before '@'"),
    ("abfss://data@myaccount.blob.core.windows.net/x", "not a Data Lake endpoint"),
    ("abfss://data@myaccount.dfs.core.windows.net:443/x", "not a Data Lake endpoint"),
    ("abfss://data@myaccount.dfs.core.windows.net/", "no blob path"),
    ("abfss://data@myaccount.dfs.core.windows.net/x?sv=1&sig=abc", "sas_token"),
    ("abfss://Data@myaccount.dfs.core.windows.net/x", "container name"),
    ("abfss://data@my_account.dfs.core.windows.net/x", "account name"),
    ("abfss://data@myaccount.dfs.core.windows.net/a//b", "empty segments"),
    ("wasbs://data@myaccount.blob.core.windows.net/x", "scheme 'wasbs://'"),
]


@pytest.mark.parametrize("query", VALID)
def test_valid_queries_are_accepted(query: str) -> None:
    result = StorageProvider.is_valid_query(query)

    assert result.valid, result.reason
    assert bool(result) is True


@pytest.mark.parametrize(("query", "reason"), INVALID)
def test_invalid_queries_are_refused_with_a_reason(query: str, reason: str) -> None:
    result = StorageProvider.is_valid_query(query)

    assert not result.valid
    assert reason in result.reason


def test_invalid_query_cannot_become_an_object(provider: StorageProvider) -> None:
    from snakemake_interface_common.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="container name"):
        provider.object("az://Bad_Name/x")


@pytest.mark.parametrize(
    "query",
    [
        "az://data/results/a.txt",
        "https://acct.blob.core.windows.net/data/results/a.txt",
        "https://acct.blob.core.windows.net/data/results/a.txt?sv=1&sig=x",
        "http://127.0.0.1:10000/devstoreaccount1/data/results/a.txt",
        "http://[::1]:10000/devstoreaccount1/data/results/a.txt",
        "https://acct.blob.core.windows.net/data/with%20space/a.txt",
        "abfss://data@acct.dfs.core.windows.net/results/a.txt",
        "abfs://data@acct.dfs.core.chinacloudapi.cn/with%20space/a.txt",
    ],
)
def test_queries_round_trip_through_their_parsed_form(query: str) -> None:
    parsed = parse_query(query)

    assert parsed.to_query() == query
    assert parse_query(parsed.with_blob("other/b.txt").to_query()).blob == "other/b.txt"


def test_url_queries_name_account_container_and_decoded_blob() -> None:
    https = parse_query("https://acct.blob.core.windows.net/data/with%20space/a.txt?sv=1&sig=x")
    emulator = parse_query("http://127.0.0.1:10000/devstoreaccount1/data/a.txt")

    assert (https.account_name, https.container, https.blob) == ("acct", "data", "with space/a.txt")
    assert https.account_url == "https://acct.blob.core.windows.net"
    assert https.sas == "sv=1&sig=x"
    assert emulator.account_url == "http://127.0.0.1:10000/devstoreaccount1"
    assert (emulator.account_name, emulator.container, emulator.blob) == (
        "devstoreaccount1",
        "data",
        "a.txt",
    )


def test_local_paths_are_unique_per_account_and_keep_the_blob_path(
    provider: StorageProvider,
) -> None:
    az = provider.object("az://data/results/a.txt")
    other_account = provider.object("https://other.blob.core.windows.net/data/results/a.txt")

    assert az.local_suffix() == "data/results/a.txt"
    assert other_account.local_suffix() == "@other/data/results/a.txt"
    assert az.local_path() == provider.local_prefix / "data/results/a.txt"
    assert az.get_inventory_parent() == str(provider.local_prefix / "data/results")


@pytest.mark.parametrize(
    ("abfs", "https"),
    [
        (
            "abfss://data@acct.dfs.core.windows.net/results/a.txt",
            "https://acct.blob.core.windows.net/data/results/a.txt",
        ),
        (
            "abfs://data@acct.dfs.core.chinacloudapi.cn/with%20space/a.txt",
            "https://acct.blob.core.chinacloudapi.cn/data/with%20space/a.txt",
        ),
    ],
)
def test_abfs_queries_are_aliases_of_the_blob_url(
    make_provider, abfs: str, https: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("AZURE_STORAGE_")]:
        monkeypatch.delenv(name)
    provider = make_provider(endpoint_url=None, account_name="acct", account_key="a2V5")
    data_lake, blob = provider.object(abfs), provider.object(https)

    for attribute in ("account_url", "account_name", "container", "blob"):
        assert getattr(data_lake.parsed, attribute) == getattr(blob.parsed, attribute)
    assert data_lake.local_path() == blob.local_path()
    assert data_lake.auth == blob.auth
    assert data_lake.auth.mode == "key"  # the configured account's credential
    assert data_lake.blob_client.url == blob.blob_client.url
    assert data_lake.blob_client.url.startswith("https://acct.blob.")
    assert provider.request_log.total == 0


def test_safe_print_hides_sas_secrets(provider: StorageProvider) -> None:
    query = (
        "https://acct.blob.core.windows.net/data/x.txt"
        "?sv=2024-05-04&ss=b&srt=o&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=TOPSECRET%2Fabc%3D"
    )

    printed = provider.safe_print(query)
    obj = provider.object(query)

    for secret in ("TOPSECRET", "sig=", "sv=", "se=2030"):
        assert secret not in printed
        assert secret not in obj.print_query
        assert secret not in str(provider.is_valid_query(query))
    assert printed.startswith("https://acct.blob.core.windows.net/data/x.txt")
    pasted = "https://acct.blob.core.windows.net/data/sv=1&sig=PASTED"
    assert "PASTED" not in provider.safe_print(pasted)
    assert "PASTED" not in str(provider.is_valid_query(pasted))
    assert provider.safe_print("az://data/x.txt") == "az://data/x.txt"


def test_example_queries_are_valid() -> None:
    examples = StorageProvider.example_queries()

    assert len(examples) == 4
    for example in examples:
        assert StorageProvider.is_valid_query(example.query).valid, example.query


def test_rate_limiter_is_keyed_per_account(provider: StorageProvider) -> None:
    from snakemake_interface_storage_plugins.common import Operation

    key_a = provider.rate_limiter_key("https://a1a.blob.core.windows.net/c0c/x", Operation.EXISTS)
    key_a2 = provider.rate_limiter_key("https://a1a.blob.core.windows.net/c1c/y", Operation.STORE)
    key_b = provider.rate_limiter_key("https://b1b.blob.core.windows.net/c0c/x", Operation.EXISTS)

    assert key_a == key_a2 != key_b
    assert provider.rate_limiter_key("az://c0c/x", Operation.EXISTS) == provider.rate_limiter_key(
        "az://c1c/y", Operation.MTIME
    )


def test_url_query_for_the_configured_account_uses_its_key(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    azurite.service_client().get_blob_client(container, "via/url.txt").upload_blob(b"url")
    obj = provider.object(f"{azurite.blob_endpoint}/{container}/via/url.txt")

    assert obj.exists()
    obj.retrieve_object()

    assert obj.local_path().read_bytes() == b"url"
    assert obj.auth.mode == "key"


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://acct.blob.core.windows.net/sv=2022-11-02&ss=b&sig=PASTEDSECRET",
        "http://127.0.0.1:10000/sv=2022-11-02&sig=PASTEDSECRET",
        "https://acct.blob.core.windows.net/container/PASTEDSECRET",
    ],
)
def test_endpoint_with_a_path_is_refused_without_echoing_it(make_provider, endpoint: str) -> None:
    from snakemake_interface_common.exceptions import WorkflowError

    with pytest.raises(WorkflowError) as raised:
        make_provider(endpoint_url=endpoint)

    assert "endpoint_url" in str(raised.value)
    assert "PASTEDSECRET" not in str(raised.value)


def test_url_queries_with_different_sas_tokens_use_their_own(
    provider: StorageProvider, azurite: Azurite
) -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    service = azurite.service_client()
    queries = []
    for _ in range(2):
        name = f"sas-{uuid.uuid4().hex[:12]}"
        service.create_container(name)
        service.get_blob_client(name, "f.txt").upload_blob(name.encode())
        sas = generate_container_sas(
            azurite.account_name,
            name,
            account_key=azurite.account_key,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        queries.append((name, f"{azurite.blob_endpoint}/{name}/f.txt?{sas}"))
    try:
        for name, query in queries:
            obj = provider.object(query)
            obj.retrieve_object()
            assert obj.local_path().read_bytes() == name.encode()
            assert obj.auth.mode == "sas"
    finally:
        for name, _ in queries:
            service.delete_container(name)


def test_a_workflows_storage_objects_cost_little_each(provider: StorageProvider) -> None:
    """Snakemake keeps a storage object per input and output of every job (30,000 for
    10,000 jobs of three files): what each costs besides its query string, which Snakemake
    holds anyway. Was about 420 bytes with a dict per parsed query and a container string
    per object; about 320 now."""
    queries = [f"az://bench/results/sample{i:05d}/part{j}.txt" for i in range(1000) for j in (0, 1)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        objects = [provider.object(query) for query in queries]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert {o.parsed.container for o in objects} == {"bench"}
    assert objects[0].parsed.container is objects[-1].parsed.container
    assert held / len(objects) < 370
