"""A local, single-process Kubernetes API server with a job controller and a node agent.

Tests, the demo and benchmarks run the executor plugin against it exactly as against AKS:
the unmodified ``kubernetes`` client and ``kubectl`` talk to it through the kubeconfig it writes.
"""
