"""Every figure the README quotes, script after script, each in a fresh process.

    python -m benchmarks.figures [--quick] [--demo-dist DIST] [--work DIR] [--only NAME,...]

In the README's order: foundation, budget, harness_overhead, coreml, coreml_compress, coreml_optests, parity,
fidelity, latency, arm64, serve_load, preprocessing, ray_scaling, reliability, convert_speed (each also runs alone as
`python -m benchmarks.figures.NAME`; see its --help). fidelity, latency, arm64 and serve_load work on a dist as
`make demo` writes it: a copy of --demo-dist
or, without it, one trained and converted here first. The full run is long: it converts MobileNetV2 at
224 px and five more Keras applications, runs coremltools' op tests of five folders, and latency benches
each dist dozens of times.

--quick leaves out MobileNetV2 at 224 px and the Keras applications, and shortens the rest:
foundation without MobileNetV2, coreml (without its speed figure) and coreml_compress on small_cnn only,
coreml_optests on its two small folders (iOS15, iOS16), latency's cost figure (4) only, arm64 on the demo
only, serve_load with 200 requests, ray_scaling on 500 inputs, convert_speed on digits only. harness_overhead and fidelity are skipped: every figure of theirs is MobileNetV2 at 224 px.
budget and parity run in full.

Prints each script's output under a header, then one line per script with its exit code and time;
exits 1 if any script failed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.figures.common import demo_dist
from benchmarks.figures.common import figure_parser, work_dir

ORDER = ("foundation", "budget", "harness_overhead", "coreml", "coreml_compress", "coreml_optests", "parity",
         "fidelity", "latency", "arm64",
         "serve_load", "preprocessing", "ray_scaling", "reliability", "convert_speed")
NEEDS_DIST = {"fidelity", "latency", "arm64", "serve_load"}


def arguments(name: str, quick: bool, dist: Path) -> list[str] | None:
    """The script's arguments, or None when --quick skips it."""
    on_dist = {"fidelity": ["--demo-dist", str(dist)], "latency": ["--demo-dist", str(dist)],
               "arm64": ["--demo-dist", str(dist)], "serve_load": ["--dist", str(dist)]}
    shorter = {
        "foundation": ["--skip-mobilenet"],
        "harness_overhead": None,
        "coreml": ["--models", "small_cnn", "--skip-speed"],
        "coreml_compress": ["--models", "small_cnn"],
        "coreml_optests": ["--folders", "iOS15,iOS16"],
        "fidelity": None,
        "latency": on_dist["latency"] + ["--only", "4"],
        "arm64": on_dist["arm64"] + ["--mobilenet-inputs", "0"],
        "serve_load": on_dist["serve_load"] + ["--requests", "200"],
        "ray_scaling": ["--quick"],
        "convert_speed": ["--models", "digits"],
    }
    if quick and name in shorter:
        return shorter[name]
    return on_dist.get(name, [])


def run(name: str, args: list[str]) -> tuple[int, float]:
    command = [sys.executable, "-m", f"benchmarks.figures.{name}", *args]
    print(f"\n== {name}: python -m benchmarks.figures.{name} {' '.join(args)}".rstrip(), flush=True)
    start = time.perf_counter()
    code = subprocess.run(command).returncode
    return code, time.perf_counter() - start


def _names(value: str) -> list[str]:
    names = value.split(",")
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown figure script {unknown[0]!r}; choose from {', '.join(ORDER)}")
    return [n for n in ORDER if n in names]


def main() -> None:
    ap = figure_parser("", __doc__)
    ap.add_argument("--quick", action="store_true", help="the subset without MobileNetV2 224 and Keras applications")
    ap.add_argument("--demo-dist", type=Path, default=None,
                    help="a dist from `make demo` (copied, never written); default: make one under --work")
    ap.add_argument("--work", type=Path, default=None, help="keep the demo dist here (default: a temp dir)")
    ap.add_argument("--only", type=_names, default=list(ORDER), metavar="NAME,...",
                    help=f"run only these scripts, from {', '.join(ORDER)}")
    args = ap.parse_args()
    if args.demo_dist is not None and not (args.demo_dist / "manifest.json").is_file():
        ap.error(f"--demo-dist {args.demo_dist}: no manifest.json there; give the dist `make demo` writes")
    results = {}
    with work_dir(args.work) as work:
        dist = work / "demo_dist"
        plan = {name: arguments(name, args.quick, dist) for name in args.only}
        plan = {name: a for name, a in plan.items() if a is not None}
        if NEEDS_DIST & set(plan):
            if args.demo_dist is not None and not dist.exists():
                shutil.copytree(args.demo_dist, dist)  # a copy: fidelity benches it, which writes report.json
            demo_dist(dist)
        for name, script_args in plan.items():
            results[name] = run(name, script_args)
    skipped = [n for n in args.only if n not in results]
    print("\n== summary" + (f" (--quick skipped {', '.join(skipped)})" if skipped else ""))
    for name, (code, seconds) in results.items():
        print(f"   {name:17s} {'ok' if code == 0 else f'FAILED (exit {code})':18s} {seconds:6.0f} s")
    sys.exit(1 if any(code for code, _ in results.values()) else 0)


if __name__ == "__main__":
    main()
