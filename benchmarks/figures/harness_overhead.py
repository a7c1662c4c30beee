"""Does the benchmark harness add latency? Harness p50 vs a bare invoke() loop.

    python -m benchmarks.figures.harness_overhead [--rounds 3] [--threads 1] [--runs 200]

Converts MobileNetV2 (224, weights=None, 1000 classes, as train/models.py builds it)
to fp32 TFLite, then alternates the harness measurement (benchmarks.latency.protocol.litert_latency)
with a bare loop (one Interpreter, set_tensor once, time each invoke()) in the same
process, and prints the p50 of each and their ratio. The limit is 5%.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import mobilenet_v2_224, quiet
from benchmarks.figures.common import figure_parser


def bare_p50(path: Path, x: np.ndarray, threads: int, runs: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    for _ in range(10):
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main() -> None:
    ap = figure_parser("harness_overhead", __doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    from benchmarks.latency.protocol import LatencyProtocol, litert_latency
    from convert.api import ConvertConfig, convert

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnv2.keras"
        mobilenet_v2_224().save(path)
        m = convert(path, Path(tmp) / "d", ConvertConfig(quantizations=("fp32",)), log=quiet)
        tflite = m.artifact("model_fp32").path(Path(tmp) / "d")
        x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
        protocol = LatencyProtocol(min_runs=args.runs, min_seconds=1.0)
        harness, bare = [], []
        for r in range(args.rounds):
            harness.append(litert_latency(tflite, [x], args.threads, protocol).p50)
            bare.append(bare_p50(tflite, x, args.threads, args.runs))
            print(f"round {r + 1}: harness p50 {harness[-1]:.3f} ms, bare invoke() p50 {bare[-1]:.3f} ms")
        h, b = statistics.median(harness), statistics.median(bare)
        print(f"MobileNetV2 224 fp32, {args.threads} thread(s): harness p50 {h:.3f} ms, bare {b:.3f} ms, "
              f"ratio {h / b:.3f} (limit 1.05)")


if __name__ == "__main__":
    main()
