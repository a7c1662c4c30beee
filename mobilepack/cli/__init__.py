"""The `mobilepack` command: click commands that parse, call one library function and print.

common.py holds what every command shares (--debug, --quiet, one-line errors and exit codes); main.py
assembles the group; apps.py (ship, serve) and arm64.py (arm64, device-bench) register beside it;
bench_options.py is what bench and demo share; console.py the progress lines. Nothing outside this
package imports it, except `python -m convert` and `python -m mobilepack`.
"""
