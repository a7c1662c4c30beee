"""Latency and memory: the protocol of LiteRT's benchmark_model, one fresh process per measurement,
repetitions with honest spread, the cross-check against Google's own tool, the machine a figure came from,
and the work per inference (MACs).

Owns: protocol.py, measure.py (the child process), phase.py (the latency phase of a bench), repeat.py,
crosscheck.py, machine.py, macs.py. May import train, convert, benchmarks.errors, benchmarks.runners and
the Core ML evaluator; never parity, gating, report or bench.
"""
