"""A pytest plugin that runs coremltools' own MIL op tests against the reference evaluator.

coremltools ships its op unit tests in the wheel (converters/mil/mil/ops/tests/iOS14 ... iOS18).
Each builds a program, converts it and compares Core ML's prediction with numpy's expected
output; off macOS the prediction is skipped, so they check nothing. With this plugin they
predict through the evaluator instead:

    python -m pytest -p benchmarks.coreml_reference.optest_plugin --optest-log out.jsonl \\
        .venv/lib/python3.11/site-packages/coremltools/converters/mil/mil/ops/tests/iOS14

Three patches: testing_utils believes it runs on macOS, models.utils reports a recent macOS,
and MLModel.predict saves the model and runs the saved file through the evaluator. An op the
evaluator lacks skips the test naming the op, so it is counted apart from a wrong number.
Every test's outcome goes to --optest-log as one JSON line (read by
benchmarks/figures/coreml_optests.py).

Loaded only by pytest (-p): the library never imports it.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

# coremltools' test matrix is read from the environment when its testing_reqs is imported:
# ML Program only (fp16 and fp32 compute) unless the caller asks for more.
os.environ.setdefault("PYMIL_TEST_TARGETS", "mlprogram")
os.environ.setdefault("INCLUDE_MIL_FP32_UNIT_TESTS", "1")

MACOS = (15, 5)  # recent enough for every target up to iOS 18 (macOS 15)
MISSING_OP = "evaluator lacks op: "
NO_STATE = "stateful model: the evaluator has no state"
NEEDS_TORCH = "needs PyTorch (the test's own code calls torch)"

_record: dict | None = None  # the running test's outcome, filled by predict


def pytest_addoption(parser):
    group = parser.getgroup("coreml optests")
    group.addoption("--optest-log", default=None, help="write one JSON line per test to this file")
    group.addoption("--optest-precision", default="cpu", choices=("cpu", "gpu/ane"),
                    help="evaluator precision for fp16-typed ops, e.g. --optest-precision gpu/ane")


def pytest_configure(config):
    _patch(config.getoption("--optest-precision"))


def _patch(precision: str) -> None:
    import coremltools.models.utils as utils
    from coremltools.converters.mil import testing_utils
    from coremltools.models import MLModel

    testing_utils._IS_MACOS = True
    utils._macos_version = lambda: MACOS
    MLModel.predict = lambda self, data, state=None: _predict(self, data, state, precision)
    MLModel.make_state = lambda self: pytest.skip(NO_STATE)


def _predict(mlmodel, data: dict, state, precision: str) -> dict:
    """Save the model, run the saved file through the evaluator, return outputs by name."""
    from benchmarks.coreml_reference import CoreMLReferenceRunner, UnsupportedOpError

    if state is not None:
        pytest.skip(NO_STATE)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("model.mlpackage" if mlmodel.is_package else "model.mlmodel")
        mlmodel.save(str(path))
        try:
            runner = CoreMLReferenceRunner(path, precision=precision)
        except UnsupportedOpError as exc:
            if not getattr(exc, "ops", None):
                raise
            pytest.skip(MISSING_OP + ", ".join(exc.ops))
        if _record is not None:
            _record["predictions"] += 1
        return runner.predict_named(data)


def _outcome(report, call, record: dict) -> str:
    """passed | passed-no-prediction | numeric | kernel-error | other-failure | missing-op | other-skip."""
    if report.skipped:
        reason = getattr(report, "wasxfail", None)
        if reason is not None:
            record["reason"] = f"xfail: {reason}"
            return "other-skip"
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        record["reason"] = reason.removeprefix("Skipped: ")
        return "missing-op" if MISSING_OP in reason else "other-skip"
    if report.passed:
        return "passed" if record["predictions"] else "passed-no-prediction"
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    record["reason"] = " | ".join(line.strip() for line in text.splitlines() if line.strip())[:400]
    kind = call.excinfo.typename if call.excinfo is not None else ""
    if kind in ("UnsupportedOpError", "InputMismatchError", "CoreMLFormatError"):
        return "kernel-error"
    if record["predictions"] and report.when == "call" and kind == "AssertionError":
        return "numeric"
    return "other-failure"


def _needs_torch(report, call) -> bool:
    """A test whose own code calls torch, which is not installed (its module imports it only if present)."""
    return (report.failed and call.excinfo is not None and call.excinfo.typename == "NameError"
            and "'torch'" in str(call.excinfo.value))


def pytest_collection_finish(session):
    """ct.convert ends with gc.collect(); with TensorFlow imported that took 0.7 s of every
    test's 0.8 s. Freezing what collection imported leaves the collector only the tests' objects."""
    gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _record
    _record = {"nodeid": item.nodeid, "predictions": 0}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    record = _record
    if record is None or record["nodeid"] != item.nodeid:
        return
    if _needs_torch(report, call):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {NEEDS_TORCH}")
    if report.when == "call" or report.outcome != "passed":
        if "outcome" in record:  # a teardown error after a verdict: keep the first verdict
            return
        record["outcome"] = _outcome(report, call, record)
        path = item.config.getoption("--optest-log")
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps(record) + "\n")

