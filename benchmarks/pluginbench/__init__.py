"""The benchmark harness behind ``benchmarks/run.py``: our plugins against the existing ones
and the raw SDK, on 127.0.0.1 (see run.py and docs/performance.md)."""
