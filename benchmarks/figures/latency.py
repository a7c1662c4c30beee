"""Latency verdicts on a noisy machine: false alarms, real slowdowns, cross-check agreement, cost, pinning.

    python -m benchmarks.figures.latency --demo-dist DIST [--work DIR] [--runs 10] [--only 1,2,3,4,5]

DIST is a `make demo` dist (digits; it is copied, never written). MobileNetV2 alpha 0.35 and 0.5 at
96 px (weights=None: latency does not depend on the weights) are converted here to the four TFLite
variants, with random-pixel calibration and evaluation data.

1. False alarms: a first bench is the baseline; then --runs more benches of the identical files with
   --baseline. Every reported regression is a false alarm. Goal: 0, on the demo and on MobileNetV2.
2. Real slowdowns: the alpha 0.5 files under the alpha 0.35 names, benched --runs times against an
   alpha 0.35 baseline. Goal: flagged in at least 9 of 10 runs. The true slowdown is measured with
   10 repetitions of each.
3. Cross-check: three benches of each dist with Google's tool; the share of comparisons that agree.
4. Cost: bench wall time with --repeat 3 against --repeat 1 (demo dist, with the cross-check).
5. Pinning: the spread between repetitions with and without --pin, MobileNetV2 alpha 0.35.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import quiet
from benchmarks.figures.common import figure_parser, work_dir

FIGURES = ("1", "1d", "1m", "2", "3", "4", "5")  # 1d, 1m: figure 1 on the demo or on MobileNetV2 only


def mobilenet_dist(work: Path, alpha: float) -> tuple[Path, Path]:
    """MobileNetV2 (alpha, 96 px, 10 classes) as the four TFLite variants, and an evaluation .npz."""
    from convert.api import ConvertConfig, convert
    from train.models import build_model

    folder = work / f"mnv2_{alpha:g}"
    if (folder / "dist" / "manifest.json").is_file():
        return folder / "dist", folder / "eval.npz"
    folder.mkdir(parents=True, exist_ok=True)
    build_model("mobilenet_v2", (96, 96), 10, alpha=alpha).save(folder / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", x=rng.uniform(0, 255, (100, 96, 96, 3)).astype(np.float32))
    np.savez(folder / "eval.npz", x=rng.uniform(0, 255, (32, 96, 96, 3)).astype(np.float32))
    convert(folder / "model.keras", folder / "dist", ConvertConfig(calibration=str(folder / "calib.npz")), log=quiet)
    return folder / "dist", folder / "eval.npz"


def bench(dist: Path, data, baseline: Path | None = None, crosscheck: bool = False, repeat: int = 3,
          pin: bool = False) -> tuple[dict, float]:
    from benchmarks.bench import BenchConfig, run_bench

    start = time.perf_counter()
    report = run_bench(dist, BenchConfig(data=str(data), baseline=baseline, crosscheck=crosscheck, repeat=repeat, pin=pin,
                                         gate=False), log=quiet)
    return report, time.perf_counter() - start


def false_alarms(name: str, dist: Path, data: str, runs: int, work: Path) -> None:
    base, _ = bench(dist, data)
    baseline = work / f"{''.join(c if c.isalnum() else '_' for c in name)}_baseline.json"  # names hold " " and "/"
    shutil.copy(dist / "report.json", baseline)
    alarms, noise = [], 0
    for _ in range(runs):
        report, _ = bench(dist, data, baseline=baseline)
        alarms += [f"{c['name']}: {'; '.join(c['problems'])}" for c in report["baseline"]["comparisons"] if c["regressed"]]
        noise += sum(len(c["within_noise"]) for c in report["baseline"]["comparisons"])
    print(f"1. {name}: {len(alarms)} false alarm(s) in {runs} benches of identical files "
          f"({noise} point ratios over x1.15 judged within noise)")
    for a in alarms:
        print(f"     {a}")


def real_slowdown(work: Path, runs: int) -> None:
    small, data = mobilenet_dist(work, 0.35)
    large, _ = mobilenet_dist(work, 0.5)
    base, _ = bench(small, data)
    shutil.copy(small / "report.json", work / "slow_baseline.json")
    true = {}
    ref, _ = bench(small, data, repeat=10)
    big, _ = bench(large, data, repeat=10)
    for a, b in zip(ref["artifacts"], big["artifacts"]):
        for s, t in zip(a["latency_ms"], b["latency_ms"]):
            true[(a["name"], s["threads"])] = t["p50"] / s["p50"]
    print("2. true slowdown alpha 0.5 / alpha 0.35 (10 repetitions each): "
          + ", ".join(f"{n} @{t}t x{r:.2f}" for (n, t), r in true.items()))
    flagged = {k: 0 for k in true}
    for _ in range(runs):
        report, _ = bench(large, data, baseline=work / "slow_baseline.json")
        for c in report["baseline"]["comparisons"]:
            for t in (1, 2):
                if any(p.startswith(f"p50 @{t}t") for p in c["problems"]):
                    flagged[(c["name"], t)] = flagged.get((c["name"], t), 0) + 1
    print("   flagged as regressions: " + ", ".join(f"{n} @{t}t {k}/{runs}" for (n, t), k in flagged.items()))


def crosscheck_agreement(dists: dict[str, tuple[Path, str]], rounds: int = 3) -> None:
    agree = total = 0
    for name, (dist, data) in dists.items():
        for _ in range(rounds):
            report, _ = bench(dist, data, crosscheck=True)
            checks = [c for a in report["artifacts"] for c in a["crosscheck"]]
            agree += sum(c["agrees"] for c in checks)
            total += len(checks)
            for a in report["artifacts"]:
                for c in a["crosscheck"]:
                    if not c["agrees"]:
                        print(f"     {name} {a['name']} @{c['threads']}t: p50 {c['p50_ms']:.3f} "
                              f"[{c['p50_interval'][0]:.3f}-{c['p50_interval'][1]:.3f}], tool {c['google_median_ms']:.3f}")
    print(f"3. cross-check: {agree} of {total} comparisons agree ({agree / total:.1%}) over {rounds} benches of each dist")


def cost(dist: Path) -> None:
    _, one = bench(dist, "digits", crosscheck=True, repeat=1)
    _, three = bench(dist, "digits", crosscheck=True, repeat=3)
    print(f"4. demo dist bench wall time: --repeat 1 {one:.0f} s, --repeat 3 {three:.0f} s (x{three / one:.2f})")


def pinning(work: Path, rounds: int = 3) -> None:
    dist, data = mobilenet_dist(work, 0.35)
    for pin in (False, True):
        spreads = []
        for _ in range(rounds):
            report, _ = bench(dist, data, pin=pin)
            spreads += [s["spread"] for a in report["artifacts"] for s in a["latency_ms"]]
        by_threads = statistics.median(spreads)
        print(f"5. {'--pin   ' if pin else '--no-pin'}: median spread between repetitions {by_threads:.1%}, "
              f"max {max(spreads):.1%} ({len(spreads)} entries, {rounds} benches)")


def main() -> None:
    parser = figure_parser("latency", __doc__)
    parser.add_argument("--demo-dist", type=Path, required=True, help="A dist from `make demo` (copied).")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", default="1,2,3,4,5", help="Which figures, e.g. 1,3 (1d, 1m: figure 1 on one dist).")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not only <= set(FIGURES):
        parser.error(f"--only {args.only}: choose from {','.join(FIGURES)}")
    with work_dir(args.work) as work:
        demo = work / "demo_dist"
        if not demo.exists():
            shutil.copytree(args.demo_dist, demo)
        if only & {"1", "1m", "3"}:  # 2 and 5 convert the MobileNetV2s they need themselves
            mnv2, mnv2_data = mobilenet_dist(work, 0.35)
        start = time.perf_counter()
        if "1" in only or "1d" in only:
            false_alarms("digits demo", demo, "digits", args.runs, work)
        if "1" in only or "1m" in only:
            false_alarms("MobileNetV2 0.35/96", mnv2, str(mnv2_data), args.runs, work)
        if "2" in only:
            real_slowdown(work, args.runs)
        if "3" in only:
            crosscheck_agreement({"digits demo": (demo, "digits"), "MobileNetV2 0.35/96": (mnv2, str(mnv2_data))})
        if "4" in only:
            cost(demo)
        if "5" in only:
            pinning(work, rounds=2)
        print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
