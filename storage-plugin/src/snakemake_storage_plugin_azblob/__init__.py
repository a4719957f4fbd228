"""Snakemake storage plugin for Azure Blob Storage (`--default-storage-provider azblob`)."""
