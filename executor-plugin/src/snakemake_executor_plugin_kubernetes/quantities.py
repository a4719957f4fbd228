"""Kubernetes resource quantities ("500m", "2Gi"), parsed by the official client's parser.

The parser is imported at first use, not with this module: `kubernetes.utils` imports the
whole client (about 0.4 CPU-seconds), and every job pod imports this plugin (Snakemake loads
each installed executor plugin) without ever parsing a quantity.
"""

from decimal import Decimal


def parse_quantity(quantity: object) -> Decimal:
    """The quantity's value; ValueError if it is not a Kubernetes quantity."""
    from kubernetes.utils import parse_quantity as parse

    return parse(quantity)
