"""The ARM64 column's figures: LiteRT's aarch64 build under qemu (Cortex-A76) against the host.

    python -m benchmarks.figures.arm64 [--demo-dist dist] [--samples 64] [--mobilenet-inputs 16]

1. The demo dist (digits): per .tflite variant, agreement and the share of bit-identical output values
   of the emulated ARM64 run against the host's run of the same file, and the wall time the ARM64 pass
   adds to `bench` (budget: 60 s).
2. MobileNetV2 224 fp32 and int8 on random-pixel inputs under emulation against the host: agreement,
   max abs error, bit-identical share, and the emulator's seconds (a cost; never a phone latency).

Needs `mobilepack arm64 setup`. Timings depend on the machine's load.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import demo_dist, figure_parser, mobilenet_v2_224, quiet, work_dir


def _check_runtime() -> None:
    from benchmarks.arm64.column import Arm64Options, unavailable

    note = unavailable(Arm64Options())
    if note:
        raise SystemExit(note)


def demo_figures(dist: Path, work: Path, samples: int) -> None:
    from benchmarks.arm64.column import Arm64Options
    from benchmarks.bench import BenchConfig, run_bench
    from benchmarks.latency.protocol import LatencyProtocol

    copy = work / "demo"
    shutil.copytree(dist, copy, ignore=shutil.ignore_patterns("report.*"))
    # Latency is not what this figure is about: the shortest protocol, one thread, one repetition.
    protocol = LatencyProtocol(min_runs=5, min_seconds=0.0, warmup_runs=1, warmup_seconds=0.0)
    started = time.perf_counter()
    report = run_bench(copy, BenchConfig(threads=(1,), latency=protocol, crosscheck=False, repeat=1,
                                         arm64=Arm64Options(samples=samples)), log=quiet)
    total = time.perf_counter() - started
    summary = report["arm64"]
    print(f"demo (digits), {summary['samples']} of {report['dataset']['count']} test inputs on "
          f"{summary['cpu']} ({summary['machine']}):")
    print(f"  {'variant':<22} {'agreement':>9} {'bit-identical':>15} {'max abs err':>11}  vs the host's run")
    for row in report["artifacts"]:
        b = row["arm64"]
        if b is None:
            continue
        print(f"  {row['name']:<22} {b['agreement_vs_host']:>9.4f} {b['bit_identical_share']:>14.1%} "
              f"{b['max_abs_error_vs_host']:>11.2e}")
    print(f"  ARM64 pass: {summary['pass_seconds']:.1f} s of this bench's {total:.1f} s "
          f"(emulated process {summary['emulation_seconds']:.1f} s; budget 60 s)")


def _live(model, seed: int = 0):
    """MobileNetV2 with seeded He-scaled kernels.

    Built with weights=None it gives every input the same softmax, 0.001 for all 1000 classes, so any
    two runtimes agree bit for bit and the comparison says nothing. Kernels of unit gain keep its
    activations, and so its outputs, different from input to input.
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if len(shape) >= 2 and "kernel" in weight.path:
            fan_in = int(np.prod(shape[:-1])) if "depthwise" not in weight.path else int(np.prod(shape[:2]))
            weight.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
    return model


def mobilenet_figures(work: Path, count: int) -> None:
    from benchmarks.arm64.column import Arm64Data, Arm64Options, arm64_pass
    from benchmarks.parity.outputs import describe_outputs
    from benchmarks.runners import KerasRunner
    from convert.api import ConvertConfig, convert

    model_path, calib = work / "mobilenet_v2_live.keras", work / "calib.npy"
    model = _live(mobilenet_v2_224())
    model.save(model_path)
    np.save(calib, np.random.default_rng(0).uniform(0, 255, (32, 224, 224, 3)).astype(np.float32))
    dist = work / "mobilenet_dist"
    convert(model_path, dist, ConvertConfig(quantizations=("fp32", "int8"), calibration=str(calib),
                                            calibration_size=32), log=quiet)
    x = np.random.default_rng(1).uniform(0, 255, (count, 224, 224, 3)).astype(np.float32)
    ref = KerasRunner(model).predict([x])
    artifacts = [(p.stem, p) for p in sorted(dist.glob("*.tflite"))]
    for name, path in artifacts:  # one emulated process per variant: its time is that variant's alone
        data = Arm64Data([x], ref, describe_outputs(model), [t.name for t in model.inputs], 8)
        summary, blocks, _ = arm64_pass([(name, path)], data, Arm64Options(samples=count))
        b = blocks[name]
        print(f"MobileNetV2 224 {name}, {count} inputs: agreement {b['agreement_vs_host']:.4f}, max abs err "
              f"{b['max_abs_error_vs_host']:.2e}, bit-identical {b['bit_identical_share']:.1%} "
              f"({b['bit_identical']}/{b['elements']}) vs the host; emulated process "
              f"{summary['emulation_seconds']:.1f} s ({summary['emulation_seconds'] / count:.2f} s per input, "
              "start-up included; a cost, not a latency)")


def main(argv=None) -> None:
    parser = figure_parser("arm64", __doc__)
    parser.add_argument("--demo-dist", type=Path, default=None, help="a dist `make demo` wrote (default: make one)")
    parser.add_argument("--samples", type=int, default=64, help="inputs of the demo's ARM64 pass (bench's default)")
    parser.add_argument("--mobilenet-inputs", type=int, default=16, help="0 skips MobileNetV2 (the demo only)")
    parser.add_argument("--work", type=Path, default=None, help="keep intermediate files here")
    args = parser.parse_args(argv)
    _check_runtime()
    with work_dir(args.work) as work:
        demo_figures(demo_dist(args.demo_dist or work / "dist"), work, args.samples)
        if args.mobilenet_inputs > 0:  # 0: the demo only (--quick)
            mobilenet_figures(work, args.mobilenet_inputs)


if __name__ == "__main__":
    main()
