"""The ARM64 column: every .tflite run by LiteRT's aarch64 build under qemu-user on an emulated
Cortex-A76, for numerics only, never latency.

Owns: runtime.py (`mobilepack arm64 setup`: the cached sysroot and wheels), column.py (running the
artifacts and comparing with the host), child.py (runs under the emulated python: numpy and ai_edge_litert
only), summary.py (how reports show the column). May import train, convert, benchmarks.errors,
benchmarks.runners and parity.
"""
