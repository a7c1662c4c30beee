"""What a bench writes: report.json (the contract, described by report.schema.json), report.md,
report.html, JUnit XML and the terminal table, all rendered from the typed report.

Owns: write.py (json, md, the atomic set), summary.py (what every format shows, formatted once),
html.py, junit.py, report.schema.json. May import train, convert, benchmarks.errors, benchmarks.row,
latency, parity and arm64 (its column's summary); never gating or bench.
"""
