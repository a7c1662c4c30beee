"""Verdicts: the gate thresholds per quantization, the budget check, the regression against a baseline
report, and the one recommended artifact per platform.

Owns: gate.py, recommend.py, regression.py. May import train, convert, benchmarks.errors, benchmarks.row,
latency, parity and report (to read a report back); never bench.
"""
