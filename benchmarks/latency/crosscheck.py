"""Cross-check mobilepack's LiteRT latency against Google's own benchmark tool.

`ai_edge_litert/tools/benchmark_litert_model.py` ships in the LiteRT wheel. It
runs the same file through LiteRT's CompiledModel API with random inputs, in
its own process, and reports its median to 0.01 ms. A median that differs from
mobilepack's p50 by more than 15% (beyond that rounding) means one of the two
harnesses is measuring something else, and the report flags it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.errors import MeasurementError, last_stderr_line

GOOGLE_TOOL = "ai_edge_litert.tools.benchmark_litert_model"
AGREEMENT_LIMIT = 0.15  # relative difference of the medians
TOOL_RESOLUTION_MS = 0.005  # the tool rounds its figures to 0.01 ms
MAX_TOOL_RUNS = 5000


def google_median_ms(path: Path, threads: int, runs: int, warmup: int, timeout_s: float = 1800) -> float:
    """The median latency Google's tool reports for `path` at `threads`."""
    with tempfile.TemporaryDirectory(prefix="mobilepack-google-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", GOOGLE_TOOL, f"--model={Path(path).resolve()}", f"--num_threads={threads}",
               f"--num_runs={runs}", f"--warmup_runs={warmup}", f"--result_json={out}"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise MeasurementError(f"{Path(path).name}: {GOOGLE_TOOL} ran over {timeout_s:.0f} s") from exc
        if proc.returncode != 0 or not out.is_file():
            raise MeasurementError(f"{Path(path).name}: {GOOGLE_TOOL} failed (exit {proc.returncode}): "
                                   f"{last_stderr_line(proc.stderr)}; re-run with --no-crosscheck to skip the cross-check")
        return float(json.loads(out.read_text())["latency"]["median_ms"])


def tool_runs(ours: int) -> int:
    """How many timed runs the tool makes beside one of our repetitions of `ours` runs: as many, 50 to 5000."""
    return min(max(50, ours), MAX_TOOL_RUNS)


def tool_run(path: Path, ours: dict) -> float:
    """One process of Google's tool, run right after one of our repetitions, with as many runs as it had."""
    return google_median_ms(path, ours["threads"], tool_runs(ours["runs"]), max(5, ours.get("warmup_runs", 5)))


def compare(entry: dict, tool: list[tuple[float, float]], runs: int) -> dict:
    """Compare one of mobilepack's latency entries with the tool's medians at the same thread count.

    The tool ran once beside each of our repetitions (fresh processes, like ours, and at the same minutes of
    the machine), and its figure is the median of its medians. The two agree when that figure falls inside
    our p50 interval widened by the 15% limit (and the tool's 0.01 ms rounding): an interval, not a point,
    because both sides are noisy.
    """
    medians = [m for m, _ in tool]
    google = float(statistics.median(medians))
    lo, hi = entry.get("p50_interval") or (entry["p50"], entry["p50"])
    ours = entry["p50"]
    return {
        "threads": entry["threads"], "p50_ms": ours, "p50_interval": [lo, hi], "google_median_ms": google,
        "google_medians_ms": medians, "google_started": [t for _, t in tool], "google_runs": runs,
        "difference": (ours - google) / google if google > 0 else None,
        "agrees": lo * (1 - AGREEMENT_LIMIT) - TOOL_RESOLUTION_MS <= google <= hi * (1 + AGREEMENT_LIMIT) + TOOL_RESOLUTION_MS,
    }
