"""Repeatability, agreement with Google's tool, evaluation throughput.

    python -m benchmarks.figures.fidelity [--demo-dist dist] [--work DIR] [--images 500] [--api-gap]

1. Repeatability: two back-to-back `bench` runs on MobileNetV2 (224, weights=None,
   1000 classes, as train/models.py builds it) give p50s of the fp32 artifact within
   5% of each other, at every thread count.
2. Agreement with Google's tool: every TFLite artifact of the demo (`make demo`
   writes it; built here if missing) and of MobileNetV2 has a p50 within 15% of
   the median of ai_edge_litert/tools/benchmark_litert_model.py (beyond its 0.01 ms
   rounding), at every thread count.
3. Evaluation throughput: mobilepack's accuracy evaluation (predict_batched over a
   LiteRTRunner) of int8 MobileNetV2 over 500 images reaches >= 90% of the
   throughput of a bare batched invoke() loop on the same interpreter settings.
   The two loops alternate three times; each keeps its best.

Prints one line per figure with PASS/FAIL; exits 1 if any fails. `--api-gap` instead times the
MobileNetV2 files with bare loops under LiteRT's Interpreter API (mobilepack's) and CompiledModel API
(Google's tool's), which is where the two harnesses can legitimately differ; each timing runs in a
fresh process, `python -m benchmarks.figures.time_one`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import demo_dist, quiet, save_mobilenet_v2
from benchmarks.figures.common import figure_parser, work_dir

REPEAT_LIMIT, AGREE_LIMIT, THROUGHPUT_FLOOR = 0.05, 0.15, 0.90
BATCH = 32


def mobilenet_dist(work: Path) -> tuple[Path, Path]:
    """MobileNetV2 as fp32, fp16, dynamic and int8 .tflite, plus an unlabelled .npz to bench it on."""
    from convert.api import ConvertConfig, convert

    dist, data = work / "mnv2", work / "mnv2_eval.npz"
    if (dist / "manifest.json").is_file() and data.is_file():
        return dist, data
    path, calib = save_mobilenet_v2(work)
    print("converting MobileNetV2 to fp32, fp16, dynamic, int8 ...", flush=True)
    convert(path, dist, ConvertConfig(quantizations=("fp32", "fp16", "dynamic", "int8"), calibration=str(calib),
                                      calibration_size=100), log=quiet)
    np.savez(data, x=np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3)).astype(np.float32))
    return dist, data


def bench(dist: Path, data: str):
    from benchmarks.bench import BenchConfig, run_bench

    t0 = time.perf_counter()
    report = run_bench(dist, BenchConfig(data=data, gate=False), log=quiet)
    print(f"  bench {dist.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return report


def repeatability(first: dict, second: dict) -> bool:
    ok = True
    a = next(r for r in first["artifacts"] if r["name"] == "model_fp32")
    b = next(r for r in second["artifacts"] if r["name"] == "model_fp32")
    for s1, s2 in zip(a["latency_ms"], b["latency_ms"]):
        diff = abs(s2["p50"] - s1["p50"]) / s1["p50"]
        ok &= diff <= REPEAT_LIMIT
        print(f"repeatability MobileNetV2 fp32 @{s1['threads']}t: p50 {s1['p50']:.3f} ms then {s2['p50']:.3f} ms, "
              f"{diff:.1%} apart (limit {REPEAT_LIMIT:.0%}): {'PASS' if diff <= REPEAT_LIMIT else 'FAIL'}")
    return ok


def agreement(label: str, report: dict) -> bool:
    ok = True
    for a in report["artifacts"]:
        for c in a["crosscheck"]:
            ok &= c["agrees"]
            print(f"agreement {label} {a['name']} @{c['threads']}t: p50 {c['p50_ms']:.3f} ms, Google's tool "
                  f"{c['google_median_ms']:.2f} ms ({c['difference']:+.1%}; limit {AGREE_LIMIT:.0%} + 0.005 ms "
                  f"rounding): {'PASS' if c['agrees'] else 'FAIL'}")
    return ok


def throughput(dist: Path, n_images: int) -> bool:
    """predict_batched (what bench's accuracy pass runs) against a bare invoke() loop, same interpreter settings."""
    from ai_edge_litert.interpreter import Interpreter

    from benchmarks.runners import LiteRTRunner, predict_batched, quantize

    path = dist / "model_int8.tflite"
    threads = os.cpu_count() or 1
    x = np.random.default_rng(1).integers(0, 256, (n_images, 224, 224, 3)).astype(np.float32)

    interp = Interpreter(model_path=str(path), num_threads=threads)
    detail = interp.get_input_details()[0]
    out_index = interp.get_output_details()[0]["index"]
    batches = [quantize(x[i:i + BATCH], detail) for i in range(0, n_images, BATCH)]  # prepared outside the timing

    def bare() -> float:
        size = None
        t0 = time.perf_counter()
        for q in batches:
            if size != len(q):
                interp.resize_tensor_input(detail["index"], list(q.shape))
                interp.allocate_tensors()
                size = len(q)
            interp.set_tensor(detail["index"], q)
            interp.invoke()
            interp.get_tensor(out_index)
        return time.perf_counter() - t0

    runner = LiteRTRunner(path, num_threads=threads)

    def evaluation() -> float:
        t0 = time.perf_counter()
        predict_batched(runner, [x], BATCH)
        return time.perf_counter() - t0

    bare(), evaluation()  # warm both (allocation, XNNPack packing)
    t_bare, t_eval = [], []
    for _ in range(3):
        t_bare.append(bare())
        t_eval.append(evaluation())
    ratio = min(t_bare) / min(t_eval)
    ok = ratio >= THROUGHPUT_FLOOR
    print(f"evaluation throughput int8 MobileNetV2, {n_images} images, batch {BATCH}, {threads} threads: "
          f"{n_images / min(t_eval):.1f} img/s vs bare invoke loop {n_images / min(t_bare):.1f} img/s = {ratio:.1%} "
          f"(floor {THROUGHPUT_FLOOR:.0%}): {'PASS' if ok else 'FAIL'}")
    return ok


def api_gap(dist: Path, runs: int = 500) -> None:
    """Why the cross-check can disagree: the same files under the Interpreter API (what mobilepack and
    Android's Interpreter run) and the CompiledModel API (what Google's tool runs), bare loops, medians;
    plus how many XNNPack partitions the Interpreter makes of each graph. Each timing gets a fresh
    process, as in `bench`: a live interpreter's idle thread pool slows the next one in the same process."""
    for quant in ("fp32", "dynamic", "int8"):
        path = dist / f"model_{quant}.tflite"
        parts = []
        for threads in (1, 2):
            interp = _child_median(path, threads, "interpreter", runs)
            compiled = _child_median(path, threads, "compiled", runs)
            no_xnn_int8 = _child_median(path, threads, "compiled-flags0", runs)
            parts.append(f"@{threads}t Interpreter {interp['ms']:.2f} ms, CompiledModel {compiled['ms']:.2f} ms "
                         f"(xnnpack_flags=0: {no_xnn_int8['ms']:.2f} ms)")
        print(f"api gap MobileNetV2 {quant} ({interp['partitions']} XNNPack partition(s)): {'; '.join(parts)}")


def _child_median(path: Path, threads: int, api: str, runs: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.figures.time_one", str(path), str(threads), api,
                          str(runs)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = figure_parser("fidelity", __doc__)
    ap.add_argument("--demo-dist", type=Path, default=Path("dist"), help="the dist `make demo` writes (built if missing)")
    ap.add_argument("--work", type=Path, default=None, help="keep MobileNetV2's artifacts here (default: a temp dir)")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--api-gap", action="store_true",
                    help="only time MobileNetV2 under the Interpreter and the CompiledModel APIs, bare loops")
    args = ap.parse_args()
    with work_dir(args.work) as work:
        mnv2, data = mobilenet_dist(work)
        if args.api_gap:
            api_gap(mnv2)
            return
        ok = throughput(mnv2, args.images)
        first, second = bench(mnv2, str(data)), bench(mnv2, str(data))
        ok &= repeatability(first, second)
        ok &= agreement("MobileNetV2", first) & agreement("MobileNetV2 (2nd run)", second)
        ok &= agreement("demo", bench(demo_dist(args.demo_dist), "digits"))
    m = first["machine"]
    print(f"measured on {m['cpu']}, {m['cores']} cores ({', '.join(m['vector_extensions'])}); host figures, "
          "not phone figures")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
