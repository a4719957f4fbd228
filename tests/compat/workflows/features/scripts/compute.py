# Run by `script:`; Snakemake injects the `snakemake` object.
with open(snakemake.output[0], "w") as out:  # noqa: F821
    out.write(f"{snakemake.params.word} by {snakemake.rule}\n")  # noqa: F821
