"""A Dockerfile with every conda environment of a workflow prebuilt, on top of our conda image.

    snakemake --containerize > Dockerfile.containerize
    snakemake --sdm conda --conda-prefix /conda-envs --list-conda-envs > conda-envs.tsv
    python -m snakemake_executor_plugin_kubernetes.condaimage \\
        --base myregistry.azurecr.io/snakemake-k8s-azblob-conda:0.1.0 \\
        --containerize Dockerfile.containerize --locations conda-envs.tsv > Dockerfile.envs

`snakemake --containerize` writes a Dockerfile that creates each environment under
/conda-envs/<hash of its content>, FROM condaforge/miniforge3. Snakemake looks there only
for jobs it runs in that image through Apptainer (`containerized:`). A pod runs Snakemake
directly, with `--conda-prefix /conda-envs`, and looks for each environment where
`--list-conda-envs` says (a hash that includes the prefix) and for a `.env_setup_done`
flag beside it. So this keeps Snakemake's Dockerfile, builds it FROM our conda image (as
root, since our image runs as user 1000), and links each environment to the place a pod
looks, with its flag. Both listings come from Snakemake itself; nothing here recomputes
its hashes.
"""

import argparse
import shlex
import sys
from pathlib import Path

CONTAINER_USER = "1000:1000"  # the job user of our image (see the repository's Dockerfile)


class CondaImageError(ValueError):
    pass


def containerized_prefixes(dockerfile: str) -> dict[str, str]:
    """Environment file -> prefix, from the comments `snakemake --containerize` writes."""
    prefixes: dict[str, str] = {}
    source = None
    for line in dockerfile.splitlines():
        text = line.removeprefix("#").strip()
        if text.startswith("source: "):
            source = text.removeprefix("source: ")
        elif text.startswith("prefix: ") and source is not None:
            prefixes[source] = text.removeprefix("prefix: ")
            source = None
    return prefixes


def pod_locations(listing: str) -> dict[str, str]:
    """Environment file -> location, from `snakemake --list-conda-envs` (tab-separated)."""
    locations: dict[str, str] = {}
    for line in listing.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0] != "environment" and fields[2].startswith("/"):
            locations[fields[0]] = fields[2]
    return locations


def envs_dockerfile(base: str, containerize_output: str, listing: str) -> str:
    lines = containerize_output.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("FROM ")), None)
    if first is None:
        raise CondaImageError("no FROM line: is this the output of `snakemake --containerize`?")
    prefixes = containerized_prefixes(containerize_output)
    locations = pod_locations(listing)
    if not locations:
        raise CondaImageError(
            "no environment in the --list-conda-envs output (run it with "
            "--software-deployment-method conda --conda-prefix /conda-envs)"
        )
    missing = sorted(set(locations) - set(prefixes))
    if missing:
        raise CondaImageError(
            f"environments {', '.join(missing)} are not in the --containerize output: "
            "run both commands again on the same workflow"
        )
    links = []
    for source, location in sorted(locations.items()):
        prefix = prefixes[source]
        if Path(location).parent == Path(prefix).parent and location != prefix:
            flag = str(Path(location).with_suffix(".env_setup_done"))
            links.append(f"ln -s {shlex.quote(prefix)} {shlex.quote(location)}")
            links.append(f"touch {shlex.quote(flag)}")
        elif Path(location).parent != Path(prefix).parent:
            raise CondaImageError(
                f"{source}: pods would look in {location}, outside {Path(prefix).parent}: "
                "list the environments with --conda-prefix /conda-envs"
            )
    out = [f"FROM {base}", "USER root", *lines[first + 1 :]]
    out.append("")
    out.append(
        "# Where Snakemake in a pod (--conda-prefix /conda-envs) looks for each environment."
    )
    out.append("RUN " + " \\\n    && ".join(links))
    out.append(f"USER {CONTAINER_USER}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snakemake_executor_plugin_kubernetes.condaimage",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--base", required=True, help="our conda image (Dockerfile target conda)")
    parser.add_argument("--containerize", required=True, type=Path)
    parser.add_argument("--locations", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        text = envs_dockerfile(args.base, args.containerize.read_text(), args.locations.read_text())
    except (OSError, CondaImageError) as e:
        print(f"condaimage: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
