"""Parity: how each output of an artifact compares with the Keras reference.

Owns: outputs.py (a model has outputs, each judged by its kind), compare.py (the built-in comparisons:
agreement, cosine, SQNR, error), per_output.py (an artifact's per-output figures), stats.py (intervals
and resolution), usermetric.py (the user's own `--metric`), precision.py (a NeuralNetwork row at both
Core ML precisions), compute_units.py (which compute units can run an artifact). May import train, convert,
benchmarks.errors, benchmarks.runners and the Core ML evaluator; never latency, gating, report or bench.
"""
