"""Where accuracy evaluation runs: in the bench process (`local`) or spread over a Ray cluster (`ray`),
and latency pinned to one Ray node. The figures are computed in bench either way.

Owns: executor.py (the executor interface, shards, the local executor), ray_executor.py, ray_setup.py,
node_latency.py. May import train, convert, benchmarks.errors, benchmarks.runners and latency.
"""
