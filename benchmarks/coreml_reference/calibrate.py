"""Activation ranges of a saved float ML Program, as coremltools' W8A8 calibration collects them on macOS.

coremltools (optimize.coreml.linear_quantize_activations) appends the tensors it wants to the model's
outputs, runs Core ML with compute units CPU_ONLY once per calibration sample, and keeps each tensor's
min and max ("rmin", "rmax"). Here the evaluator runs the program instead, in its "cpu" precision (the
CPU's: fp16-typed ops in float32), and the ranges are taken over every sample. coremltools 9.0 itself
overwrites a tensor's range with each new sample, so only the last sample counts there; that is
apple/coremltools#2704, fixed by PR #2724 to keep the running min and max, which is what this does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputMismatchError
from .model import MLModel
from .values import BlobFile


def activation_ranges(path: Path, inputs, names) -> dict[str, dict[str, np.float32]]:
    """{tensor: {"rmin", "rmax"}} over every sample, for the model inputs and the top-level op outputs in `names`.

    inputs: one batch-first array per model input, in the model's input space (raw pixels for an image).
    """
    model = MLModel(path, precision="cpu")
    if model.spec.WhichOneof("Type") != "mlProgram":
        raise InputMismatchError(f"{Path(path).name}: activation ranges need an ML Program (.mlpackage)")
    from .mil import MILProgram  # (numba and the kernels: imported when a program runs, as model.py does)

    # observable: keep every pad the converter made explicit, since its output may be what a conv reads
    program = MILProgram(model.spec, BlobFile(model.weights), observable=True)
    if len(inputs) != len(model.inputs):
        raise InputMismatchError(f"{Path(path).name}: model takes {len(model.inputs)} input(s), got {len(inputs)}")
    wanted, ranges = set(names), {}

    def watch(name, value):
        if name in wanted and isinstance(value, np.ndarray) and value.size:
            _widen(ranges, name, value)

    for i in range(len(inputs[0])):
        feeds = {f.name: model._feed(f, x[i]) for f, x in zip(model.inputs, inputs)}
        for name, value in feeds.items():
            _widen(ranges, name, value)
        program.run(feeds, watch)
    return ranges


def _widen(ranges: dict, name: str, value: np.ndarray) -> None:
    lo, hi = np.float32(value.min()), np.float32(value.max())
    if name in ranges:
        lo, hi = min(lo, ranges[name]["rmin"]), max(hi, ranges[name]["rmax"])
    ranges[name] = {"rmin": lo, "rmax": hi}
