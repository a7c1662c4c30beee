"""coremltools' own MIL op tests, run against the Core ML reference evaluator.

    python -m benchmarks.figures.coreml_optests [--folders iOS14,iOS17] [--precision cpu] [--logs DIR]
    python -m benchmarks.figures.coreml_optests --from-logs DIR

coremltools ships its op unit tests in the wheel (converters/mil/mil/ops/tests/iOS14 ... iOS18),
ML Program fp16 and fp32. Each folder runs in its own pytest process with
tests/coreml_optest_plugin.py, which predicts through the evaluator. Per file it
prints: numeric cases passed; numeric failures (a wrong number or shape); undefined, wrong numbers for
inputs the op's own documentation rules out (crop_resize with normalized box coordinates outside
[0, 1], whose result no document gives; see coreml_optest_plugin._outside_contract); fp16res, mismatches within
2 fp16 ulps in cases that compare fp16-typed data at fp32 tolerance (their expected values assume
fp16 rounding in some tests and none in others, so no one precision passes them all); kernel errors
(an implemented op raised); missing ops (skipped, counted by op); other skips (PyTorch absent,
stateful models, xfail); other failures (not about predicted numbers: conversion, the test's own
checks). Tests that pass without predicting (type inference only) are counted apart.

Before this suite was in the project, issue 15 measured the iOS14 folder with fp16 rounding: 464
numeric cases passed, 12 numeric failures (layer_norm), 14 kernel errors, about 40 missing op types.
Exits 1 if a folder's pytest run left no log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from benchmarks.figures.common import figure_parser, work_dir

FOLDERS = ("iOS14", "iOS15", "iOS16", "iOS17", "iOS18")
COLUMNS = ("passed", "numeric", "undefined-input", "fp16-resolution", "kernel-error", "missing-op", "other-skip", "other-failure",
           "passed-no-prediction")
HEADERS = ("passed", "numeric", "undefined", "fp16res", "kernel", "missing", "skip", "fail", "no-pred")


def tests_root() -> Path:
    """Where the coremltools wheel keeps its op tests; found without importing coremltools (and TensorFlow)."""
    import importlib.util

    return Path(importlib.util.find_spec("coremltools").origin).parent / "converters" / "mil" / "mil" / "ops" / "tests"


def run_folder(folder: str, log: Path, precision: str) -> float:
    """One pytest process over one folder; its outcomes go to `log`. Returns the wall time."""
    root = tests_root()
    log.unlink(missing_ok=True)
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "coreml_optest_plugin",
               "--optest-log", str(log), "--optest-precision", precision, str(root / folder),
               "--rootdir", str(root), "--confcutdir", str(root.parents[2]), "-p", "no:cacheprovider"]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo / "tests"), os.environ.get("PYTHONPATH")]))}
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=repo, env=env)
    return time.perf_counter() - start


def read_log(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def table(folder: str, records: list[dict]) -> Counter:
    """Print one folder's rows (one per test file) and return the folder's totals."""
    per_file: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        per_file[r["nodeid"].split("::")[0].split("/")[-1]][r["outcome"]] += 1
    total = Counter()
    print(f"\n{folder}: {'file':32s}" + "".join(f"{h:>10s}" for h in HEADERS))
    for name in sorted(per_file):
        total.update(per_file[name])
        print(f"{'':{len(folder) + 2}s}{name:32s}" + "".join(f"{per_file[name][c]:10d}" for c in COLUMNS))
    print(f"{'':{len(folder) + 2}s}{'total':32s}" + "".join(f"{total[c]:10d}" for c in COLUMNS))
    return total


def missing_ops(records: list[dict]) -> Counter:
    ops = Counter()
    for r in records:
        if r["outcome"] == "missing-op":
            ops.update(r["reason"].split(": ", 1)[1].split(", "))
    return ops


def details(records: list[dict], limit: int = 8) -> None:
    """The missing ops by number of tests, and the first wrong results, so each can be acted on."""
    ops = missing_ops(records)
    if ops:
        print(f"  missing ops ({len(ops)} types): " + ", ".join(f"{op} {n}" for op, n in ops.most_common()))
    for kind in ("numeric", "undefined-input", "fp16-resolution", "kernel-error", "other-failure"):
        bad = [r for r in records if r["outcome"] == kind]
        for r in bad[:limit]:
            print(f"  {kind}: {r['nodeid'].split('/')[-1][:150]}\n      {r.get('reason', '')[:200]}")
        if len(bad) > limit:
            print(f"  ... and {len(bad) - limit} more {kind}")
    skips = Counter(r.get("reason", "")[:90] for r in records if r["outcome"] == "other-skip")
    if skips:
        print("  other skips: " + "; ".join(f"{n} x {reason}" for reason, n in skips.most_common(6)))


def main() -> None:
    ap = figure_parser("coreml_optests", __doc__)
    ap.add_argument("--folders", default=",".join(FOLDERS), help="comma list, e.g. --folders iOS14,iOS17")
    ap.add_argument("--precision", default="cpu", choices=("cpu", "gpu/ane"),
                    help="evaluator precision for fp16-typed ops, e.g. --precision gpu/ane")
    ap.add_argument("--logs", type=Path, help="keep each folder's JSON-lines log here, e.g. --logs optest_logs")
    ap.add_argument("--from-logs", type=Path, help="only print the tables of logs a former run kept in DIR")
    args = ap.parse_args()
    plugin = Path(__file__).resolve().parents[2] / "tests" / "coreml_optest_plugin.py"
    if not plugin.is_file() and not args.from_logs:  # an installed wheel has no tests/
        ap.error(f"{plugin} not found: the op tests run through the plugin in a checkout's tests/; "
                 "run this script from a clone of mobilepack")
    folders = [f for f in args.folders.split(",") if f]
    unknown = [f for f in folders if f not in FOLDERS]
    if unknown:
        ap.error(f"unknown folder {unknown[0]!r}; choose from {', '.join(FOLDERS)}")
    grand, empty = Counter(), []
    with work_dir(args.from_logs or args.logs) as work:
        for folder in folders:
            log = work / f"{folder}.jsonl"
            took = None if args.from_logs else run_folder(folder, log, args.precision)
            records = read_log(log)
            if not records:
                empty.append(folder)
            total = table(folder, records)
            grand.update(total)
            details(records)
            if took is not None:
                print(f"  ({len(records)} tests in {took:.0f} s, precision {args.precision})", flush=True)
    print("\nall folders: " + ", ".join(f"{h} {grand[c]}" for h, c in zip(HEADERS, COLUMNS)))
    if empty:
        sys.exit(f"no test outcomes logged for {', '.join(empty)}: did pytest run? (try --logs DIR and look inside)")


if __name__ == "__main__":
    main()
