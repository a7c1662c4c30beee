"""A pytest plugin that runs coremltools' own MIL op tests against the reference evaluator.

coremltools ships its op unit tests in the wheel (converters/mil/mil/ops/tests/iOS14 ... iOS18).
Each builds a program, converts it and compares Core ML's prediction with numpy's expected
output; off macOS the prediction is skipped, so they check nothing. With this plugin they
predict through the evaluator instead:

    T=.venv/lib/python3.11/site-packages/coremltools/converters/mil
    PYTHONPATH=tests python -m pytest -p coreml_optest_plugin --optest-log out.jsonl \\
        --rootdir $T/mil/ops/tests --confcutdir $T $T/mil/ops/tests/iOS14

(PYTHONPATH=tests: this file lives in the repository's tests/, beside the tests that run it;
--confcutdir lets coremltools' own conftest name the parametrized cases.)

Three patches: testing_utils believes it runs on macOS, models.utils reports a recent macOS,
and MLModel.predict saves the model and runs the saved file through the evaluator (inputs cast
to their declared types, one call at the declared shape, outputs by name). An op the evaluator
lacks skips the test naming the op, so it is counted apart from a wrong number; a stateful model
skips. compare_backend is wrapped only to classify a failure: one within 2 fp16 ulps, in a case
whose data are fp16-typed (or a NeuralNetwork file run at gpu/ane precision, where every layer's
output is fp16), is told apart from a wrong number (see _fp16_aware). --optest-precision applies
to both formats: an ML Program's fp16-typed ops, a NeuralNetwork file's every layer (nn_program.py). Every test's
outcome goes to --optest-log as one JSON line (read by benchmarks/figures/coreml_optests.py).

Loaded only by pytest (-p): the evaluator (benchmarks/coreml_reference) never imports it; it uses
the evaluator's public API, MLModel.
"""

from __future__ import annotations

import gc
import inspect
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
                    help="evaluator precision (an ML Program's fp16-typed ops, a NeuralNetwork's layers), "
                         "e.g. --optest-precision gpu/ane")


def pytest_configure(config):
    _patch(config.getoption("--optest-precision"))


def _patch(precision: str) -> None:
    import coremltools.models.utils as utils
    from coremltools.converters.mil import testing_utils
    from coremltools.converters.mil.mil.ops.tests import testing_utils as op_testing_utils
    from coremltools.models import MLModel

    testing_utils._IS_MACOS = True
    utils._macos_version = lambda: MACOS
    MLModel.predict = lambda self, data, state=None: _predict(self, data, state, precision)
    MLModel.make_state = lambda self: pytest.skip(NO_STATE)
    # Not a patch of what is computed: a mismatch is re-read to tell fp16 resolution from a wrong number.
    compare = _fp16_aware(testing_utils.compare_backend)
    testing_utils.compare_backend = op_testing_utils.compare_backend = compare


def _predict(mlmodel, data: dict, state, precision: str) -> dict:
    """Save the model, run the saved file through the evaluator, return outputs by name."""
    from benchmarks import coreml_reference as reference  # (coremltools' MLModel is the one patched above)

    if state is not None:
        pytest.skip(NO_STATE)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("model.mlpackage" if mlmodel.is_package else "model.mlmodel")
        mlmodel.save(str(path))
        try:  # a few tests build NeuralNetwork models whatever the backend: those run at the precision asked too
            runner = reference.MLModel(path, precision=precision)
        except reference.UnsupportedOpError as exc:
            if not getattr(exc, "ops", None):
                raise
            pytest.skip(MISSING_OP + ", ".join(exc.ops))
        if _record is not None:
            _record["predictions"] += 1
        try:
            outputs = runner.predict(data)
        except reference.PredictionError as exc:  # Core ML's predict fails with RuntimeError on such inputs
            raise RuntimeError(f"Unable to compute the prediction using ML Program: {exc}") from None
        _LAST.update(outputs=outputs, fp16=_has_fp16(runner.spec) or (precision == "gpu/ane" and not mlmodel.is_package),
                     undefined=_outside_contract(runner, data))
        return outputs


def _outside_contract(runner, data: dict) -> str | None:
    """Why the program's inputs lie outside what an op's documentation defines, or None.

    One case is known: crop_resize with normalized_coordinates, whose coordinates "must be in the
    interval [0, 1]" (coremltools, mil/ops/defs/iOS15/image_resizing.py and iOS17). What Core ML
    returns for a box outside it is documented nowhere; Apple's TensorFlow frontend test calls it
    unstable (rdar://98749492) and keeps its boxes inside the image.
    """
    if runner.spec.WhichOneof("Type") != "mlProgram":  # crop_resize is an ML Program op
        return None
    program = runner.program
    for step in program.steps:
        if step.op_type != "crop_resize":
            continue
        args = dict(step.consts)
        args.update({k: program.values.get(ref, data.get(ref)) for k, ref in step.refs.items() if isinstance(ref, str)})
        if not bool(np.asarray(args.get("normalized_coordinates", False))):
            continue
        boxes = np.asarray(args["boxes"] if args.get("boxes") is not None else args["roi"], np.float64)
        coords = boxes.reshape(boxes.shape[0], -1)[:, -4:]  # a 5-value roi starts with the image index
        if coords.size and (coords.min() < 0 or coords.max() > 1):
            return (f"crop_resize with normalized coordinates outside [0, 1] ({coords.min():g} .. {coords.max():g}), "
                    "which its documentation rules out")
    return None


_LAST: dict = {}
FP16_RESOLUTION = "within 2 fp16 ulps of the expected value, in a case whose data are fp16-typed"


class Fp16Resolution(AssertionError):
    """A mismatch no larger than fp16 can resolve, where the test compares fp16-typed data at fp32 tolerance."""


def _has_fp16(spec) -> bool:
    from coremltools.proto import FeatureTypes_pb2

    half = FeatureTypes_pb2.ArrayFeatureType.FLOAT16
    if any(f.type.multiArrayType.dataType == half for f in [*spec.description.input, *spec.description.output]):
        return True
    if spec.WhichOneof("Type") != "mlProgram":
        return False
    fn = spec.mlProgram.functions["main"]
    return any(o.type.tensorType.dataType == 10 for op in fn.block_specializations[fn.opset].operations
               for o in op.outputs)  # 10: MIL FLOAT16


def _fp16_aware(compare_backend):
    """compare_backend, whose failure in a case with fp16-typed data is re-raised as Fp16Resolution when
    every element lies within the test's tolerance plus 2 fp16 ulps: such a case's expected values
    assume more (or less) precision than fp16 data carry, and no evaluator precision passes all of them."""
    signature = inspect.signature(compare_backend)

    def compare(*args, **kwargs):
        try:
            return compare_backend(*args, **kwargs)
        except AssertionError as exc:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            if not _LAST.get("fp16") or not _within_fp16(_LAST["outputs"], a["expected_outputs"], a["atol"], a["rtol"]):
                raise
            raise Fp16Resolution(f"{FP16_RESOLUTION}: {exc}") from None
    return compare


def _within_fp16(outputs: dict, expected: dict, atol: float, rtol: float) -> bool:
    from coremltools.converters.mil.testing_utils import _get_coreml_out_from_dict

    for name, want in expected.items():
        got = np.asarray(_get_coreml_out_from_dict(outputs, name), np.float64)
        want = np.asarray(want, np.float64)
        if got.shape != want.shape:
            return False
        size = np.maximum(np.maximum(np.abs(got), np.abs(want)), 2.0 ** -14)
        ulp = 2.0 ** (np.floor(np.log2(size)) - 10)
        if not np.all(np.abs(got - want) <= atol + rtol * np.abs(want) + 2 * ulp):
            return False
    return True


def _outcome(report, call, record: dict) -> str:
    """passed | passed-no-prediction | numeric | undefined-input | fp16-resolution | kernel-error | other-failure |
    missing-op | other-skip. undefined-input: a wrong number for inputs the op's documentation rules out."""
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
    if kind == "Fp16Resolution":
        return "fp16-resolution"
    if record["predictions"] and report.when == "call" and kind == "AssertionError" and _about_numbers(call, text):
        if _LAST.get("undefined"):
            record["reason"] = f"{_LAST['undefined']} | {record['reason']}"[:400]
            return "undefined-input"
        return "numeric"
    return "other-failure"


_COMPARISONS = {"compare_backend", "compare_shapes", "assert_allclose", "assert_array_equal", "assert_almost_equal",
                "assert_array_almost_equal"}


def _about_numbers(call, text: str) -> bool:
    """An assertion on predicted values or shapes (coremltools' compare_backend, numpy.testing, np.allclose),
    not one on the program's structure (e.g. a count of cast ops)."""
    names = {entry.frame.code.name for entry in call.excinfo.traceback}
    return bool(names & _COMPARISONS) or "allclose" in text


def _needs_torch(report, call) -> bool:
    """A test whose own code calls torch, which is not installed (its module imports it only if present)."""
    return (report.failed and call.excinfo is not None and call.excinfo.typename == "NameError"
            and "'torch'" in str(call.excinfo.value))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A test module that imports torch at its top (absent here) is skipped whole, and logged once."""
    outcome = yield
    report = outcome.get_result()
    text = str(report.longrepr) if report.failed else ""
    if "No module named 'torch'" in text or "name 'torch' is not defined" in text:
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, f"Skipped: {NEEDS_TORCH} (module not collected)")
        _write(collector.config, {"nodeid": collector.nodeid, "file": collector.path.name, "predictions": 0,
                                  "outcome": "other-skip",
                                  "reason": f"{NEEDS_TORCH} (module not collected)"})


def _write(config, record: dict) -> None:
    path = config.getoption("--optest-log")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def pytest_collection_finish(session):
    """ct.convert ends with gc.collect(); with TensorFlow imported that took 0.7 s of every
    test's 0.8 s. Freezing what collection imported leaves the collector only the tests' objects."""
    gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _record
    _record = {"nodeid": item.nodeid, "file": item.path.name, "predictions": 0}
    _LAST.clear()


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
        _write(item.config, record)

