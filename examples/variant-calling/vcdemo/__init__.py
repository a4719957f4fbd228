"""Helpers of the variant-calling example: read simulation, truth checks, the demo driver."""
