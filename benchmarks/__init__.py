"""Stage 3: every artifact of a manifest against the Keras reference -> report.json / .md / .html, and
the gate's verdict. May import train and convert, never mobilepack.

bench.py runs a bench; runners.py puts every runtime behind `predict`; evaldata.py loads the data;
row.py is the typed report row. The rooms: latency/, parity/, gating/, report/, arm64/, distributed/,
phone/, and coreml_reference/, the Core ML evaluator, a library of its own that imports nothing of
mobilepack. figures/ holds the scripts that print the README's figures; nothing imports it.
"""
