"""Parse and validate the query forms the plugin accepts.

* ``az://CONTAINER/PATH`` - a blob in the account configured through the settings;
* ``https://ACCOUNT.blob.SUFFIX/CONTAINER/PATH[?SAS]`` - any Azure endpoint suffix;
* ``abfss://CONTAINER@ACCOUNT.dfs.SUFFIX/PATH`` (or ``abfs://``) - the Data Lake form of
  Spark, Hadoop and Databricks: an alias of the blob of the same account, container and
  path, reached through the account's Blob endpoint ``https://ACCOUNT.blob.SUFFIX``;
* ``http://127.0.0.1:PORT/ACCOUNT/CONTAINER/PATH`` - the path style of local emulators
  (Azurite), accepted for loopback hosts and for the emulator's well-known account.

Queries may contain Snakemake wildcards such as ``{sample}``; validation treats every
wildcard as a short valid name.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

from snakemake_interface_storage_plugins.io import WILDCARD_REGEX

AZ_SCHEME = "az"
# Hadoop's ABFS driver: abfss is TLS; abfs uses TLS too unless configured otherwise
# (fs.azure.always.use.https), so both are served over https here.
ABFS_SCHEMES = ("abfs", "abfss")
EMULATOR_ACCOUNT = "devstoreaccount1"
MAX_BLOB_NAME_LENGTH = 1024
MAX_BLOB_SEGMENTS = 254
SPECIAL_CONTAINERS = frozenset({"$root", "$web", "$logs"})

_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")
_PASTED_SIGNATURE_RE = re.compile(r"(^|[/&;])(sig=)[^&/?#;]*", re.IGNORECASE)
# Characters kept literally when a blob name is written back into a URL.
_URL_SAFE = "/~!$&'()*+,;=:@{}"


class InvalidQuery(ValueError):
    """A query that the plugin cannot use; the message is the reason."""


@dataclass(frozen=True, slots=True)
class BlobQuery:
    """A parsed query.

    Snakemake keeps a storage object, and so one of these, per input and output of every
    job: a workflow of 10,000 jobs holds 30,000 or more. Slots and one shared container
    string keep each at about 0.1 KiB besides its blob name.

    ``account_url`` is None for ``az://`` queries, whose account comes from the settings.
    ``sas`` is the query string of a URL query (without ``?``), or None. ``dfs_host`` is
    the host an ``abfs[s]://`` query was written with (its ``account_url`` is the Blob
    endpoint of the same account).
    """

    scheme: str
    container: str
    blob: str
    account_url: str | None = None
    account_name: str | None = None
    sas: str | None = None
    dfs_host: str | None = None

    @property
    def is_url(self) -> bool:
        return self.account_url is not None

    def to_query(self) -> str:
        """Render the query in the form it was written in."""
        if not self.is_url:
            return f"{AZ_SCHEME}://{self.container}/{self.blob}"
        if self.dfs_host is not None:
            path = quote(self.blob, safe=_URL_SAFE)
            return f"{self.scheme}://{self.container}@{self.dfs_host}/{path}"
        url = f"{self.account_url}/{self.container}/{quote(self.blob, safe=_URL_SAFE)}"
        return f"{url}?{self.sas}" if self.sas else url

    def with_blob(self, blob: str) -> BlobQuery:
        return replace(self, blob=blob)

    def local_suffix_for(self, blob: str) -> str:
        """Local path (relative to the provider's prefix) of ``blob`` in this container.

        URL queries are placed under ``@ACCOUNT/``: container names cannot start with
        ``@``, so they never collide with ``az://`` queries. The https and abfs[s] forms
        of one blob share their local path.
        """
        base = self.container if not self.is_url else f"@{self.account_name}/{self.container}"
        return f"{base}/{blob}" if blob else base


def parse_query(query: str) -> BlobQuery:
    """Parse ``query`` or raise :class:`InvalidQuery` with the reason."""
    if not isinstance(query, str) or not query:
        raise InvalidQuery("the query is empty")
    if _CONTROL_CHARS_RE.search(query):
        raise InvalidQuery("the query contains control characters")
    scheme, sep, _ = query.partition("://")
    if not sep:
        raise InvalidQuery("expected az://CONTAINER/PATH or an https:// blob URL")
    scheme = scheme.lower()
    if scheme == AZ_SCHEME:
        parsed = _parse_az(query[len("az://") :])
    elif scheme in ("http", "https"):
        parsed = _parse_url(query)
    elif scheme in ABFS_SCHEMES:
        parsed = _parse_abfs(query, scheme)
    else:
        raise InvalidQuery(
            f"scheme '{scheme}://' is not handled by azblob (use az://, https:// or abfss://)"
        )
    check_container_name(parsed.container)
    check_blob_name(parsed.blob)
    return parsed


def validate_query(query: str) -> str | None:
    """Return None if ``query`` is usable, else the reason it is not."""
    try:
        parse_query(query)
    except InvalidQuery as e:
        return str(e)
    return None


def _parse_az(rest: str) -> BlobQuery:
    container, sep, blob = rest.partition("/")
    if not container:
        raise InvalidQuery("no container name after az://")
    if not sep or not blob:
        raise InvalidQuery(f"no blob path after the container: expected az://{container}/PATH")
    if "?" in rest or "#" in rest:
        raise InvalidQuery(
            "az:// queries cannot carry a '?' or '#' part: give a SAS through the sas_token "
            "setting or use an https:// blob URL"
        )
    return BlobQuery(scheme=AZ_SCHEME, container=sys.intern(container), blob=blob)


def _parse_url(query: str) -> BlobQuery:
    parts = urlsplit(query)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.username or parts.password:
        raise InvalidQuery("blob URLs must not contain a user name or password")
    if parts.fragment:
        raise InvalidQuery("blob URLs must not contain a '#' fragment")
    try:
        port = parts.port
    except ValueError as e:
        raise InvalidQuery(f"invalid port in URL: {e}") from None
    segments = parts.path.split("/")[1:] if parts.path.startswith("/") else []
    netloc = host if port is None else f"{_bracket(host)}:{port}"
    if ".blob." in f".{host}." and not _is_loopback(host):
        account = host.split(".", 1)[0]
        account_url = f"{scheme}://{netloc}"
    else:
        if not segments or not (_is_loopback(host) or segments[0] == EMULATOR_ACCOUNT):
            raise InvalidQuery(
                f"host '{host}' is not an Azure blob endpoint (ACCOUNT.blob.SUFFIX) "
                "nor a local emulator (127.0.0.1/localhost with /ACCOUNT/CONTAINER/PATH)"
            )
        account = segments.pop(0)
        account_url = f"{scheme}://{netloc}/{account}"
    check_account_name(account)
    if not segments or not segments[0]:
        raise InvalidQuery("no container name in the URL path")
    container = segments[0]
    blob = unquote("/".join(segments[1:]))
    if not blob:
        raise InvalidQuery(f"no blob path after the container '{container}'")
    return BlobQuery(
        scheme=sys.intern(scheme),
        container=sys.intern(container),
        blob=blob,
        account_url=sys.intern(account_url),
        account_name=sys.intern(account),
        sas=parts.query or None,
    )


def _parse_abfs(query: str, scheme: str) -> BlobQuery:
    form = f"{scheme}://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH"
    parts = urlsplit(query)
    if parts.query or parts.fragment or "?" in query or "#" in query:
        raise InvalidQuery(
            f"{scheme}:// queries cannot carry a '?' or '#' part: give a SAS through the "
            "sas_token setting or use an https:// blob URL"
        )
    container = parts.username
    host = (parts.hostname or "").lower()
    if not container or parts.password is not None:
        raise InvalidQuery(f"no container before '@' in the {scheme}:// query: expected {form}")
    try:
        port = parts.port
    except ValueError as e:
        raise InvalidQuery(f"invalid port in URL: {e}") from None
    account, dot_dfs, suffix = host.partition(".dfs.")
    if not dot_dfs or not account or not suffix or port is not None:
        raise InvalidQuery(
            f"host '{host}' of the {scheme}:// query is not a Data Lake endpoint "
            f"(ACCOUNT.dfs.SUFFIX): expected {form}"
        )
    check_account_name(account)
    blob = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not blob:
        raise InvalidQuery(f"no blob path after the host: expected {form}")
    return BlobQuery(
        scheme=sys.intern(scheme),
        container=sys.intern(unquote(container)),
        blob=blob,
        account_url=sys.intern(f"https://{account}.blob.{suffix}"),
        account_name=sys.intern(account),
        dfs_host=sys.intern(host),
    )


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _without_wildcards(text: str) -> str:
    return WILDCARD_REGEX.sub("w", text)


def check_account_name(name: str) -> None:
    if not re.fullmatch(r"[a-z0-9]{3,24}", name):
        raise InvalidQuery(
            f"storage account name '{name}' is invalid: 3-24 lowercase letters and digits"
        )


def check_container_name(name: str) -> None:
    """Raise :class:`InvalidQuery` unless ``name`` follows Azure's container naming rules."""
    if name in SPECIAL_CONTAINERS:
        return
    plain = _without_wildcards(name)
    if not 3 <= len(plain) <= 63:
        raise InvalidQuery(f"container name '{name}' must have 3 to 63 characters")
    if not _CONTAINER_RE.match(plain):
        raise InvalidQuery(
            f"container name '{name}' may contain only lowercase letters, digits and single "
            "hyphens, and must start and end with a letter or digit"
        )


def check_blob_name(name: str) -> None:
    """Raise :class:`InvalidQuery` unless ``name`` is a usable blob path."""
    plain = _without_wildcards(name)
    if not plain:
        raise InvalidQuery("the blob path is empty")
    if len(plain) > MAX_BLOB_NAME_LENGTH:
        raise InvalidQuery(
            f"blob path has {len(plain)} characters, Azure allows at most {MAX_BLOB_NAME_LENGTH}"
        )
    segments = plain.split("/")
    if len(segments) > MAX_BLOB_SEGMENTS:
        raise InvalidQuery(
            f"blob path has {len(segments)} segments, Azure allows at most {MAX_BLOB_SEGMENTS}"
        )
    if _PASTED_SIGNATURE_RE.search(plain):
        raise InvalidQuery("blob path contains a SAS signature (sig=...): a SAS must follow a '?'")
    if plain.startswith("/"):
        raise InvalidQuery(
            "blob path starts with '/' (an absolute path under the default storage prefix?): "
            "use a relative path, or mark the file with local()"
        )
    if "\\" in plain:
        raise InvalidQuery("blob path must not contain a backslash (Azure treats it as '/')")
    if plain.endswith("/"):
        raise InvalidQuery("blob path must not end with '/': name a directory without it")
    for segment in segments:
        if segment == "":
            raise InvalidQuery("blob path must not contain empty segments ('//' or leading '/')")
        if segment in (".", ".."):
            raise InvalidQuery("blob path must not contain '.' or '..' segments")
    if plain.endswith("."):
        raise InvalidQuery("blob path must not end with '.' (Azure drops trailing dots)")


def redact(query: str) -> str:
    """``query`` with any URL query string (SAS token) replaced by a placeholder, and any
    signature pasted into the path masked."""
    base, sep, _ = query.partition("?")
    base = _PASTED_SIGNATURE_RE.sub(r"\1\2<redacted>", base)
    return f"{base}?<redacted>" if sep else base
