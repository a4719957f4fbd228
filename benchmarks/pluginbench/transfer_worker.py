"""One measured transfer, in a process of its own, so that its peak RSS is its own.

Run by the driver with the Python of the venv under test (ours, a baseline plugin's,
or ours for the raw SDK) and one JSON argument; prints one JSON line with the result.
It imports nothing from the repository, only the package it measures.

Peak RSS: the kernel's high-water mark (VmHWM) is reset through /proc/self/clear_refs
right before the transfer, so imports and setup do not count, then read after it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} missing from /proc/self/status")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def sdk_container(spec: dict[str, Any]):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        spec["account_url"],
        credential={"account_name": spec["account_name"], "account_key": spec["account_key"]},
    )
    return service.get_container_client(spec["container"])


def sdk_transfer(spec: dict[str, Any]) -> None:
    """upload_blob / download_blob with max_concurrency; a thread pool for many files."""
    container = sdk_container(spec)
    local = Path(spec["path"])
    concurrency = spec["concurrency"]
    if spec["many"]:
        if spec["direction"] == "up":
            files = [item for item in local.rglob("*") if item.is_file()]

            def upload(item: Path) -> None:
                name = f"{spec['blob']}/{item.relative_to(local).as_posix()}"
                with item.open("rb") as data:
                    container.upload_blob(name, data, overwrite=True)

            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(upload, files))
        else:
            prefix = spec["blob"] + "/"
            names = list(container.list_blob_names(name_starts_with=prefix))

            def download(name: str) -> None:
                target = local / name[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    container.download_blob(name).readinto(out)

            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(download, names))
    elif spec["direction"] == "up":
        with local.open("rb") as data:
            container.upload_blob(spec["blob"], data, overwrite=True, max_concurrency=concurrency)
    else:
        with local.open("wb") as out:
            container.download_blob(spec["blob"], max_concurrency=concurrency).readinto(out)


def plugin_object(spec: dict[str, Any]):
    module = importlib.import_module(f"snakemake_storage_plugin_{spec['plugin']}")
    settings = module.StorageProviderSettings(**spec["settings"])
    provider = module.StorageProvider(
        local_prefix=Path(spec["local_prefix"]),
        logger=logging.getLogger("bench"),
        settings=settings,
    )
    return provider.object(spec["query"])


def plugin_transfer(spec: dict[str, Any], storage_object) -> None:
    """The plugin's managed_store / managed_retrieve, as Snakemake calls them."""
    local = Path(spec["path"])
    target = storage_object.local_path()
    if spec["direction"] == "up":
        target.parent.mkdir(parents=True, exist_ok=True)
        if local.is_dir():
            shutil.copytree(local, target, copy_function=os.link)
        else:
            os.link(local, target)
        asyncio.run(storage_object.managed_store())
    else:
        asyncio.run(storage_object.managed_retrieve())
        if local.is_dir():
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()
        target.rename(local)


def main(spec: dict[str, Any]) -> dict[str, Any]:
    storage_object = plugin_object(spec) if spec["kind"] == "plugin" else None
    start_rss = status_kib("VmRSS")
    reset_peak_rss()
    started = time.perf_counter()
    if storage_object is None:
        sdk_transfer(spec)
    else:
        plugin_transfer(spec, storage_object)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "bytes": tree_size(Path(spec["path"])),
        "peak_rss_kib": status_kib("VmHWM"),
        "start_rss_kib": start_rss,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
