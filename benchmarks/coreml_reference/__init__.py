"""A reference evaluator of saved Core ML models in numpy (and numba), for machines without Core ML.

Core ML's prediction exists only on macOS. This package runs the same saved files anywhere: ML
Programs (.mlpackage, iOS 15-18 opsets, compressed weights included) and NeuralNetworks (.mlmodel),
in Core ML's two precisions, "cpu" (float32 compute, Core ML's CPU) and "gpu/ane" (float16 compute,
as the GPU and the Neural Engine run a model). It owns the reading of the files (model.py, values.py),
both interpreters (mil*.py, nn*.py), their kernels (kernels.py, depthwise.py), batching a program
that declares batch 1 (batching.py, nn_batching.py), the memory reused between calls (workspace.py)
and the activation ranges coremltools' W8A8 calibration takes (calibrate.py).

It imports nothing of mobilepack (train, convert, mobilepack, the rest of benchmarks): its only
dependencies are numpy, numba, scipy (erf), threadpoolctl and coremltools' protobuf specs and blob
reader. Its errors derive from CoreMLReferenceError; mobilepack's benchmarks/runners.py wraps it as
the `coreml-reference` runtime and translates them into mobilepack's named errors.

Public API, as coremltools' on a Mac (docs/coreml-on-linux.md):

    from benchmarks.coreml_reference import ComputeUnit, MLModel

    model = MLModel("model.mlpackage", compute_units=ComputeUnit.CPU_ONLY)  # or "ALL", ..., or precision="gpu/ane"
    outputs = model.predict({"input": x})  # {output name: array}, one call at the declared shapes
    spec = model.get_spec()                # the coremltools.proto Model

and beyond coremltools: model.predict_batch([batch-first array per input]) -> [array per output],
load_spec(path) -> (spec, weights folder), calibrate.activation_ranges(path, inputs, names).
"""

from .errors import CoreMLFormatError, CoreMLReferenceError, InputMismatchError, PredictionError, UnsupportedOpError
from .model import MLModel, load_spec
from .precision import PRECISIONS, ComputeUnit

__all__ = ["PRECISIONS", "ComputeUnit", "CoreMLFormatError", "CoreMLReferenceError", "InputMismatchError", "MLModel",
           "PredictionError", "UnsupportedOpError", "load_spec"]
