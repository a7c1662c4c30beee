"""Bad input across the CLI, the loaders and HTTP: how many distinct cases the tests try, and how they end.

    python -m benchmarks.figures.reliability [--tests DIR] [-k EXPR]

Runs the tests marked `bad_input` (tests/ of a checkout; they are not in the wheel) in one pytest process
with MOBILEPACK_BAD_INPUT_LOG set. Every check in them records itself when it passes
(tests/cli_helpers.py `record_bad_input`): a CLI case is one line, its exit code and no traceback; an HTTP
case a 4xx with the JSON error object and never a 5xx; a loader case the named error and nothing else.
Cases that write check that the previous output is intact. A passing marked test that records no check of
its own counts as one case (tests/conftest.py). The count is the suite's own list, not a hand count.

Prints the cases per surface, the failed tests (a traceback, a 5xx or a partial output makes a test fail),
and exits 1 if any failed. Goal (issue 14): at least 60 distinct cases, 0 failures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from benchmarks.figures.common import figure_parser

GOAL = 60


def run_marked_tests(tests: Path, expr: str | None) -> tuple[list[dict], dict[str, str]]:
    """(the recorded checks, {test id: outcome}) of one pytest run of the bad_input tests."""
    with tempfile.TemporaryDirectory(prefix="mobilepack-reliability-") as tmp:
        log, junit = Path(tmp) / "checks.jsonl", Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", str(tests), "-m", "bad_input", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "-o", "junit_family=xunit1"] + (["-k", expr] if expr else [])
        proc = subprocess.run(cmd, env=dict(os.environ, MOBILEPACK_BAD_INPUT_LOG=str(log)), capture_output=True, text=True)
        print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-500:])
        checks = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        return checks, _outcomes(junit) if junit.is_file() else {}


def _outcomes(junit: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        out[name] = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = figure_parser("reliability", __doc__)
    ap.add_argument("--tests", type=Path, default=Path(__file__).resolve().parents[2] / "tests",
                    help="the tests folder of a mobilepack checkout (default: this checkout's)")
    ap.add_argument("-k", dest="expr", help="only the bad_input tests matching this pytest -k expression")
    args = ap.parse_args(argv)
    if not (args.tests / "conftest.py").is_file():
        print(f"{args.tests}: no tests here; run from a mobilepack checkout or give --tests DIR", file=sys.stderr)
        return 2
    checks, outcomes = run_marked_tests(args.tests, args.expr)
    surfaces = Counter(c["surface"] for c in checks)
    failed = sorted(t for t, o in outcomes.items() if o == "failed")
    total = sum(surfaces.values())
    print(f"bad-input cases tried: {total} ({', '.join(f'{s} {n}' for s, n in sorted(surfaces.items()) if n)}) "
          f"in {len(outcomes)} tests")
    print(f"failed tests (a traceback, a 5xx, a partial output or a wrong message): {len(failed)}")
    for t in failed:
        print(f"  FAILED {t}")
    verdict = "PASS" if total >= GOAL and not failed else "FAIL"
    print(f"{verdict}: {total} distinct cases (goal >= {GOAL}), {len(failed)} failures (goal 0)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
