"""Running the CLI in-process, and what every test checks of a refused command: its exit code and one line.

Every bad-input check also counts itself: `python -m benchmarks.figures.reliability` runs the tests marked
`bad_input` with MOBILEPACK_BAD_INPUT_LOG set and counts the checks that passed, per surface. A check in a
test without the marker is an error, so the count cannot silently miss one.
"""

import json
import os

from click.testing import CliRunner

from mobilepack.cli.main import cli

LOG_ENV = "MOBILEPACK_BAD_INPUT_LOG"
CURRENT = {"test": None, "marker": None, "checks": 0}  # set for each test by the autouse fixture in conftest.py


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def record_bad_input(surface: str, what: str) -> None:
    """Count one bad-input check that passed (one line and exit code, a 4xx with its JSON error, a named error)."""
    assert CURRENT["marker"] is not None, (
        f"{CURRENT['test']}: a bad-input check in a test without @pytest.mark.bad_input(...): mark it so it is counted")
    CURRENT["checks"] += 1
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"surface": surface, "test": CURRENT["test"], "what": what}) + "\n")


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]
    if code == 2:  # exit 1 is a failed check (a gate), not bad input
        record_bad_input("cli", lines[0][:120])
