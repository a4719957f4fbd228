"""Snakemake executor plugin for Kubernetes (`--executor kubernetes`)."""
