"""Storage figures: DAG metadata requests (1) and transfers (2), on Azurite.

(1) A one-job workflow whose N inputs already exist in storage, in one folder and spread
over 100 folders; `snakemake -n` wall time and the HTTP requests it sends, counted by a
proxy in front of Azurite. (2) One large file up and down, and a directory of many small
files, each measured in a process of its own (MB/s, peak RSS): ours, the azure plugin,
and the raw SDK with a max_concurrency sweep (its best counts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pluginbench.proxy import CountingProxy
from pluginbench.report import Results, Row
from pluginbench.storage_sides import StorageSide

HERE = Path(__file__).resolve().parent
WORKER = HERE / "transfer_worker.py"
MIB = 1024**2

SNAKEFILE = """\
N = int(config["count"])
FOLDERS = int(config["folders"])


def input_names():
    if FOLDERS == 1:
        return [f"inputs/f{i:05d}.txt" for i in range(N)]
    return [f"inputs/d{i % FOLDERS:03d}/f{i:05d}.txt" for i in range(N)]


rule summarize:
    input:
        input_names(),
    output:
        "summary.txt",
    shell:
        "cat {input} | wc -c > {output}"
"""


def input_names(count: int, folders: int) -> list[str]:
    if folders == 1:
        return [f"inputs/f{i:05d}.txt" for i in range(count)]
    return [f"inputs/d{i % folders:03d}/f{i:05d}.txt" for i in range(count)]


@dataclass
class StorageBench:
    """Everything the storage figures share: Azurite, the proxy, a container, a scratch dir."""

    account_url: str  # direct to Azurite
    proxy: CountingProxy
    account_name: str
    account_key: str
    container: str
    scratch: Path
    log: Callable[[str], None]

    @property
    def proxied_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}/{self.account_name}"

    def container_client(self):
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient(
            self.account_url,
            credential={"account_name": self.account_name, "account_key": self.account_key},
        )
        return service.get_container_client(self.container)

    def populate(self, names: Iterable[str], data: bytes = b"x\n", threads: int = 16) -> None:
        container = self.container_client()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda name: container.upload_blob(name, data, overwrite=True), names))

    def delete_prefix(self, prefix: str) -> None:
        container = self.container_client()
        names = list(container.list_blob_names(name_starts_with=prefix))
        for start in range(0, len(names), 256):
            container.delete_blobs(*names[start : start + 256])


# --- (1) DAG metadata -------------------------------------------------------------------


def dry_run(bench: StorageBench, side: StorageSide, prefix: str, count: int, folders: int):
    """Run `snakemake -n` for the one-job workflow; return (seconds, requests, kinds)."""
    workdir = bench.scratch / f"meta-{side.plugin}-{folders}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(SNAKEFILE)
    command = [
        str(side.python),
        "-m",
        "snakemake",
        "--dry-run",
        "--cores",
        "1",
        "--quiet",
        "rules",
        "--directory",
        str(workdir),
        "--snakefile",
        str(workdir / "Snakefile"),
        "--default-storage-provider",
        side.plugin,
        "--default-storage-prefix",
        f"az://{bench.container}/{prefix}",
        *side.cli,
        "--config",
        f"count={count}",
        f"folders={folders}",
    ]
    bench.proxy.log.reset()
    started = time.perf_counter()
    done = subprocess.run(
        command, env=side.environment(), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    kinds = bench.proxy.log.snapshot()
    if done.returncode != 0 or "summarize" not in done.stdout + done.stderr:
        tail = (done.stderr or done.stdout)[-1500:]
        raise RuntimeError(f"{side.label} dry-run failed ({done.returncode}): {tail}")
    return seconds, sum(kinds.values()), kinds


def metadata_figures(
    bench: StorageBench,
    sides: dict[str, StorageSide | None],
    count: int,
    results: Results,
    problems: dict[str, str],
) -> None:
    for folders in (1, 100):
        prefix = f"meta-{folders}"
        bench.log(f"metadata: uploading {count} inputs in {folders} folder(s)")
        bench.populate(f"{prefix}/{name}" for name in input_names(count, folders))
        measured: dict[str, tuple[float, int, dict[str, int]] | None] = {}
        for key, side in sides.items():
            if side is None:
                measured[key] = None
                continue
            bench.log(f"metadata: {side.label} dry-run, {count} inputs, {folders} folder(s)")
            try:
                measured[key] = dry_run(bench, side, prefix, count, folders)
            except RuntimeError as error:
                problems[f"metadata {key} {folders}"] = str(error)
                measured[key] = None
        results.details[f"metadata_{folders}_folders"] = {
            key: None
            if value is None
            else {"seconds": value[0], "requests": value[1], "by_kind": value[2]}
            for key, value in measured.items()
        }
        label = f"dry-run, {count} inputs in {folders} folder{'s' if folders > 1 else ''}"
        ours, theirs = measured.get("ours"), measured.get("azure")
        results.add(
            Row(
                f"{label}: HTTP requests",
                "requests",
                ours and ours[1],
                theirs and theirs[1],
                "azure 0.4.4",
            )
        )
        results.add(
            Row(
                f"{label}: wall time",
                "s",
                ours and round(ours[0], 2),
                theirs and round(theirs[0], 2),
                "azure 0.4.4",
            )
        )
        bench.delete_prefix(prefix + "/")


# --- (2) Transfers ----------------------------------------------------------------------


def make_large_file(path: Path, size: int) -> None:
    """Incompressible-looking data: a random 4 MiB block repeated (Azurite does not dedupe)."""
    block = os.urandom(4 * MIB)
    with path.open("wb") as out:
        remaining = size
        while remaining > 0:
            out.write(block[: min(remaining, len(block))])
            remaining -= len(block)


def make_small_files(folder: Path, count: int, size: int = 4096) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"part-{index:05d}.dat").write_bytes(os.urandom(size))


def same_edges(left: Path, right: Path, window: int = MIB) -> bool:
    if left.stat().st_size != right.stat().st_size:
        return False
    with left.open("rb") as a, right.open("rb") as b:
        if a.read(window) != b.read(window):
            return False
        a.seek(-min(window, left.stat().st_size), os.SEEK_END)
        b.seek(-min(window, right.stat().st_size), os.SEEK_END)
        return a.read() == b.read()


def same_tree(left: Path, right: Path) -> bool:
    def listing(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
        }

    return listing(left) == listing(right)


def run_worker(python: Path, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(WORKER), json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"transfer worker failed ({done.returncode}): {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class Transfer:
    """Result of one measured transfer."""

    seconds: float
    nbytes: int
    peak_rss_mib: float

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / self.seconds / 1e6

    @classmethod
    def from_worker(cls, raw: dict[str, Any]) -> Transfer:
        return cls(raw["seconds"], raw["bytes"], round(raw["peak_rss_kib"] / 1024, 1))


def transfer_pair(
    bench: StorageBench,
    side: StorageSide | None,
    source: Path,
    blob: str,
    concurrency: int = 1,
) -> tuple[Transfer, Transfer]:
    """Upload ``source`` then download it again (``side`` None = raw SDK); verify the copy."""
    many = source.is_dir()
    back = bench.scratch / f"back-{blob.replace('/', '-')}"
    if side is None:
        python, env = Path(sys.executable), dict(os.environ)
        base = {
            "kind": "sdk",
            "account_url": bench.account_url,
            "container": bench.container,
            "account_name": bench.account_name,
            "account_key": bench.account_key,
            "blob": blob,
            "concurrency": concurrency,
            "many": many,
        }
    else:
        python, env = side.python, side.environment()
        local_prefix = bench.scratch / f"prefix-{side.plugin}"
        shutil.rmtree(local_prefix, ignore_errors=True)
        base = {
            "kind": "plugin",
            "plugin": side.plugin,
            "settings": side.settings,
            "query": f"az://{bench.container}/{blob}",
            "local_prefix": str(local_prefix),
        }
    up = run_worker(python, base | {"direction": "up", "path": str(source)}, env)
    if side is not None:
        shutil.rmtree(bench.scratch / f"prefix-{side.plugin}", ignore_errors=True)
    down = run_worker(python, base | {"direction": "down", "path": str(back)}, env)
    intact = same_tree(source, back) if many else same_edges(source, back)
    if back.is_dir():
        shutil.rmtree(back)
    else:
        back.unlink(missing_ok=True)
    bench.delete_prefix(blob)
    if not intact:
        raise RuntimeError(f"downloaded copy of {blob} differs from the uploaded data")
    return Transfer.from_worker(up), Transfer.from_worker(down)


def sdk_best(
    bench: StorageBench, source: Path, blob: str, sweep: list[int], details: dict[str, Any]
) -> tuple[Transfer, int, Transfer, int]:
    best_up: tuple[Transfer, int] | None = None
    best_down: tuple[Transfer, int] | None = None
    for concurrency in sweep:
        bench.log(f"transfers: raw SDK, {source.name}, max_concurrency={concurrency}")
        up, down = transfer_pair(bench, None, source, f"{blob}-c{concurrency}", concurrency)
        details[f"sdk_c{concurrency}"] = {"up": up.__dict__, "down": down.__dict__}
        if best_up is None or up.mb_per_s > best_up[0].mb_per_s:
            best_up = (up, concurrency)
        if best_down is None or down.mb_per_s > best_down[0].mb_per_s:
            best_down = (down, concurrency)
    assert best_up is not None and best_down is not None
    return best_up[0], best_up[1], best_down[0], best_down[1]


def measure_side(
    bench: StorageBench,
    key: str,
    side: StorageSide | None,
    source: Path,
    blob: str,
    details: dict[str, Any],
    problems: dict[str, str],
) -> tuple[Transfer | None, Transfer | None]:
    if side is None:
        return None, None
    bench.log(f"transfers: {side.label}, {source.name}")
    try:
        up, down = transfer_pair(bench, side, source, blob)
    except RuntimeError as error:
        problems[f"transfer {key} {source.name}"] = str(error)
        return None, None
    details[key] = {"up": up.__dict__, "down": down.__dict__}
    return up, down


def transfer_figures(
    bench: StorageBench,
    sides: dict[str, StorageSide | None],
    size: int,
    sweep: list[int],
    small_count: int,
    results: Results,
    problems: dict[str, str],
    *,
    link: str = "",
) -> None:
    """Rows for one large file and one directory of small files, up and down. ``link``
    names a shaped link the sides go through ("" for the direct one); it is appended to
    the figure names and the detail keys, and the RSS check runs on the direct link only."""
    suffix = f" over {link}" if link else ""
    key_suffix = "_shaped" if link else ""
    large = bench.scratch / "large.bin"
    bench.log(f"transfers{suffix}: writing a {size / MIB:.0f} MiB test file")
    make_large_file(large, size)
    details: dict[str, Any] = {"size_bytes": size} | ({"link": link} if link else {})
    results.details[f"transfer_large{key_suffix}"] = details

    sdk_up, c_up, sdk_down, c_down = sdk_best(bench, large, "sdk/large.bin", sweep, details)
    ours_up, ours_down = measure_side(
        bench, "ours", sides["ours"], large, "ours/large.bin", details, problems
    )
    az_up, az_down = measure_side(
        bench, "azure", sides["azure"], large, "azure/large.bin", details, problems
    )
    size_label = f"{size / MIB:.0f} MiB"
    for direction, ours_t, sdk_t, conc, az_t in (
        ("upload", ours_up, sdk_up, c_up, az_up),
        ("download", ours_down, sdk_down, c_down, az_down),
    ):
        mbs = ours_t and round(ours_t.mb_per_s, 1)
        results.add(
            Row(
                f"{size_label} {direction}{suffix}",
                "MB/s",
                mbs,
                round(sdk_t.mb_per_s, 1),
                f"raw SDK best, max_concurrency={conc}",
            )
        )
        results.add(
            Row(
                f"{size_label} {direction}{suffix}",
                "MB/s",
                mbs,
                az_t and round(az_t.mb_per_s, 1),
                "azure 0.4.4",
            )
        )
        results.add(
            Row(
                f"{size_label} {direction}{suffix} peak RSS",
                "MiB",
                ours_t and ours_t.peak_rss_mib,
                az_t and az_t.peak_rss_mib,
                "azure 0.4.4",
            )
        )

    # Peak RSS flat in file size: ours again with an eighth of the size.
    if sides["ours"] is not None and not link:
        smaller = bench.scratch / "smaller.bin"
        make_large_file(smaller, max(size // 8, MIB))
        small_details: dict[str, Any] = {"size_bytes": smaller.stat().st_size}
        results.details["transfer_eighth_size"] = small_details
        measure_side(
            bench, "ours", sides["ours"], smaller, "ours/smaller.bin", small_details, problems
        )
        smaller.unlink()
    large.unlink()

    folder = bench.scratch / "many"
    bench.log(f"transfers{suffix}: writing {small_count} small files")
    make_small_files(folder, small_count)
    many: dict[str, Any] = {"files": small_count}
    results.details[f"transfer_many{key_suffix}"] = many
    sdk_up, c_up, sdk_down, c_down = sdk_best(bench, folder, "sdk/many", [1, 16], many)
    ours_up, ours_down = measure_side(
        bench, "ours", sides["ours"], folder, "ours/many", many, problems
    )
    az_up, az_down = measure_side(
        bench, "azure", sides["azure"], folder, "azure/many", many, problems
    )
    for direction, ours_t, sdk_t, conc, az_t in (
        ("upload", ours_up, sdk_up, c_up, az_up),
        ("download", ours_down, sdk_down, c_down, az_down),
    ):
        label = f"{small_count} x 4 KiB directory {direction}{suffix}"
        ours_s = ours_t and round(ours_t.seconds, 2)
        results.add(
            Row(label, "s", ours_s, round(sdk_t.seconds, 2), f"raw SDK best, {conc} threads")
        )
        results.add(Row(label, "s", ours_s, az_t and round(az_t.seconds, 2), "azure 0.4.4"))
    shutil.rmtree(folder)
