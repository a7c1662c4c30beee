"""Load a saved .mlpackage / .mlmodel and run it, with coremltools' MLModel API.

MLModel(path, compute_units=...) loads a model; predict({name: array}) -> {name: array} runs one
call at the declared shapes, as Core ML's own predict does; predict_batch([batch-first array per
input]) -> [batch-first array per output] runs many samples, in one pass where batching.py /
nn_batching.py allow it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from .batching import adapt, batch_plan, declared_shapes, run_batched
from .errors import CoreMLFormatError, InputMismatchError, UnsupportedOpError
from .precision import ComputeUnit, checked_precision, compute_unit, precision_of
from .values import BlobFile, feed_array, output_array
from .workspace import WorkspacePool

MANIFEST_FIX = "re-save the model (a copied .mlpackage needs every file)"


def import_proto():
    """coremltools' protobuf modules, imported quietly: coremltools logs about its macOS-only modules
    (and a TensorFlow or Torch version it was not tested with) when first imported."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        from coremltools.proto import Model_pb2
    return Model_pb2


def load_spec(path: Path):
    """The Model protobuf and the weights folder, refusing anything that is not a whole Core ML model."""
    Model_pb2 = import_proto()
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.exists():
        raise CoreMLFormatError(f"{path}: no such Core ML model")
    weights = None
    if path.is_dir():
        manifest = path / "Manifest.json"
        if not manifest.is_file():
            raise CoreMLFormatError(f"{path}: not an .mlpackage (no Manifest.json); truncated copy?")
        spec_file = path / "Data" / root_model(path, manifest)
        weights = spec_file.parent / "weights"
    elif path.suffix == ".mlmodel":
        spec_file = path
    else:
        raise CoreMLFormatError(f"{path}: not a Core ML model (.mlpackage folder or .mlmodel file)")
    if not spec_file.is_file():
        raise CoreMLFormatError(f"{path}: model spec {spec_file.name} is missing; truncated .mlpackage?")
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(spec_file.read_bytes())
    except DecodeError:
        raise CoreMLFormatError(f"{path}: not a Core ML model (the spec does not parse); truncated or another format?") from None
    if spec.WhichOneof("Type") is None:
        raise CoreMLFormatError(f"{path}: not a Core ML model (empty spec)")
    return spec, weights


def root_model(package: Path, manifest: Path, fix: str = MANIFEST_FIX) -> str:
    """The model spec's path inside Data/, as the package's Manifest.json names it.

    A damaged manifest is one CoreMLFormatError line: the file, what is wrong, and `fix`."""
    try:
        data = manifest.read_bytes()
    except OSError as exc:
        raise CoreMLFormatError(f"{manifest}: cannot read ({exc.strerror or exc}); {fix}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CoreMLFormatError(f"{manifest}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                                f"{fix}") from None
    if not text.strip():
        raise CoreMLFormatError(f"{manifest}: empty file, not JSON; {fix}")
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CoreMLFormatError(f"{manifest}: not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, nesting past the stack
        raise CoreMLFormatError(f"{manifest}: not valid JSON ({type(exc).__name__}); {fix}") from None
    source = f"{package}: damaged Manifest.json"
    _need(info, {"itemInfoEntries": dict, "rootModelIdentifier": str}, source, fix, "")
    root = info["rootModelIdentifier"]
    entry = info["itemInfoEntries"].get(root)
    _need(entry, {"path": str}, source, fix, f"itemInfoEntries[{_shown(root)}]")
    return entry["path"]


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "true/false", type(None): "null"}


def _need(value, fields: dict, source: str, fix: str, where: str) -> None:
    """`value` is an object holding `fields` of these JSON types, else a CoreMLFormatError naming the key path."""
    if not isinstance(value, dict):
        raise CoreMLFormatError(f"{source}: {where or 'the document'} is {_json_type(value)}, expected an object; {fix}")
    missing = [k for k in fields if k not in value]
    if missing:
        raise CoreMLFormatError(f"{source}: {where + ': ' if where else ''}missing field(s) {', '.join(missing)}; {fix}")
    for key, kind in fields.items():
        if type(value[key]) is bool or not isinstance(value[key], kind):
            name = f"{where}.{key}" if where else key
            raise CoreMLFormatError(f"{source}: {name} is {_json_type(value[key])}, expected {_JSON_TYPES[kind]}; {fix}")


def _json_type(value) -> str:
    return next((name for t, name in _JSON_TYPES.items() if type(value) is t), type(value).__name__)


def _shown(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classifier_labels(spec) -> list[str] | None:
    """Class labels of an ML Program classifier, from its classify op."""
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const"}
    for op in block.operations:
        if op.type == "classify":
            from .values import parse_value

            const = consts[op.inputs["classes"].arguments[0].name]
            values = parse_value(const.attributes["val"], BlobFile(None))
            return [str(v.item() if hasattr(v, "item") else v) for v in np.asarray(values).ravel()]
    return None


class MLModel:
    """A saved Core ML model run by the evaluator, for machines without Core ML: coremltools' MLModel API.

    MLModel(path, compute_units=ComputeUnit.CPU_ONLY) loads an .mlpackage (ML Program) or an .mlmodel
    (NeuralNetwork); compute_units takes this package's ComputeUnit, coremltools.ComputeUnit or a member's
    name ("CPU_ONLY", "ALL", "CPU_AND_GPU", "CPU_AND_NE"). Like Core ML, the units set the precision:
      CPU_ONLY        precision "cpu": float32 compute. An ML Program's fp16-typed ops run in float32, as
                      Core ML's CPU runs them (Apple's typed-execution guide calls an ML Program's types a
                      minimum precision, which the CPU exceeds for every op it has no fp16 kernel for); fp16
                      inputs and outputs still hold fp16 values. A NeuralNetwork runs in float32 throughout.
      ALL (default), CPU_AND_GPU, CPU_AND_NE
                      precision "gpu/ane": float16 compute, as the GPU and the Neural Engine run a model. An
                      ML Program's fp16-typed ops have their outputs rounded to float16; a NeuralNetwork's
                      weights, inputs and every layer's output are rounded to float16, arithmetic inside a
                      layer in float32 (nn_program.py gives the rule and its sources).
    precision="cpu" or "gpu/ane" chooses the precision itself (compute_units is then not read).
    A model Core ML would partition between units is computed in one precision here.
    """

    def __init__(self, model, compute_units=ComputeUnit.ALL, precision: str | None = None):
        self.compute_units = compute_unit(compute_units)
        self.precision = checked_precision(precision) if precision is not None else precision_of(self.compute_units)
        self._workspaces = WorkspacePool()  # memory reused from one call to the next
        path = Path(model)
        try:
            self._load(path)
        except (CoreMLFormatError, UnsupportedOpError) as exc:
            text = str(exc)
            named = type(exc)(text if str(path) in text else f"{path.name}: {text}")
            named.ops = getattr(exc, "ops", ())
            raise named from None

    def _load(self, path: Path) -> None:
        spec, weights = load_spec(path)
        self.path = path
        self.spec = spec
        self.weights = weights  # an .mlpackage's weights folder; None for an .mlmodel
        kind = spec.WhichOneof("Type")
        desc = spec.description
        self.inputs = list(desc.input)
        self.probabilities = desc.predictedProbabilitiesName or None
        if kind == "mlProgram":
            from .mil import MILProgram

            self.program = MILProgram(spec, BlobFile(weights), precision=self.precision)
            plan, adapt_to = batch_plan(self.program, declared_shapes(spec)), adapt
        elif kind in ("neuralNetwork", "neuralNetworkClassifier"):
            from .nn_batching import nn_batch_plan
            from .nn_program import NeuralNetworkProgram

            nn = getattr(spec, kind)
            if kind == "neuralNetworkClassifier":
                self.probabilities = nn.labelProbabilityLayerName
            outputs = {o.name for o in desc.output} | {self.probabilities} - {None}
            self.program = NeuralNetworkProgram(nn, precision=self.precision, outputs=tuple(outputs))
            plan, adapt_to = nn_batch_plan(nn, self.inputs), self.program.adapt
        else:
            raise CoreMLFormatError(f"{path}: Core ML model type {kind!r} is not a neural network")
        # why predict_batch cannot run a batch in one pass (batching.py, nn_batching.py), or None
        self.per_sample_reason = plan if isinstance(plan, str) else None
        if self.per_sample_reason is None:
            adapt_to(plan)
        self.output_names = self._output_names()

    def get_spec(self):
        """A deep copy of the model's protobuf specification (coremltools.proto.Model_pb2.Model)."""
        return copy.deepcopy(self.spec)

    def predict(self, data):
        """Outputs by name for inputs by name, as coremltools' MLModel.predict: one call at the declared
        shapes, each input cast to its declared type (an image input takes a PIL image or an (H, W, C)
        array of pixels), each output in its declared type. A list of such dicts gives a list of results."""
        if isinstance(data, (list, tuple)):
            return [self.predict(d) for d in data]
        if not isinstance(data, dict):
            raise InputMismatchError(f"{self.path.name}: predict takes a dict of input name -> value, "
                                     f"got {type(data).__name__}")
        missing = [f.name for f in self.inputs if f.name not in data]
        if missing:
            raise InputMismatchError(f"{self.path.name}: no value for input(s) {', '.join(missing)}")
        out = self.program.run({f.name: feed_array(f, data[f.name]) for f in self.inputs})
        return {o.name: output_array(o, out[o.name]) for o in self.spec.description.output if o.name in out}

    def _output_names(self) -> list[str]:
        """A classifier's probabilities (in label order), else every declared output."""
        if self.probabilities:
            return [self.probabilities]
        return [o.name for o in self.spec.description.output]

    def _feed(self, feature, x: np.ndarray) -> np.ndarray:
        kind = feature.type.WhichOneof("Type")
        if kind == "imageType":
            t = feature.type.imageType
            want = (int(t.height), int(t.width), 3)
            if tuple(x.shape) != want:
                raise InputMismatchError(f"{self.path.name}: input {feature.name} takes images of {want}, data has {tuple(x.shape)}")
            chw = np.transpose(x.astype(np.float32), (2, 0, 1))
            if t.colorSpace == 30:  # BGR
                chw = chw[::-1]
            return np.ascontiguousarray(chw[None])
        shape = tuple(int(v) for v in feature.type.multiArrayType.shape)
        if tuple(x.shape) != shape[1:]:
            raise InputMismatchError(f"{self.path.name}: input {feature.name} takes {shape[1:]}, data has {tuple(x.shape)}")
        return feed_array(feature, x)[None]  # float32, or an int32 input's ids as they are

    def predict_one(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        """One sample (one array per input, without the batch axis): float32 outputs with a batch axis of 1."""
        feeds = {f.name: self._feed(f, x) for f, x in zip(self.inputs, sample)}
        with self._workspaces.lend():
            out = self.program.run(feeds)
        if self.probabilities:
            return [np.asarray(out[self.probabilities], np.float32).reshape(1, -1)]
        return [np.asarray(out[n], np.float32) for n in self.output_names]

    def predict_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Batch-first arrays, one per input in the model's order (raw pixels (N, H, W, 3) for an image
        input) -> float32 batch-first arrays, one per output (a classifier: its probabilities in label order)."""
        if len(inputs) != len(self.inputs):
            raise InputMismatchError(f"{self.path.name}: model takes {len(self.inputs)} input(s), got {len(inputs)}")
        n = len(inputs[0])
        if self.per_sample_reason is None and n > 1:
            feeds = [np.concatenate([self._feed(f, s) for s in x]) for f, x in zip(self.inputs, inputs)]
            try:
                return run_batched(self._predict_chunk, feeds, n, self._workspaces)
            except UnsupportedOpError as exc:  # an op the plan let through did not take the batch:
                self.per_sample_reason = f"a batched run failed ({exc})"  # per sample from now on
        # One sample at a time at the model's declared batch of 1 (batching.py says when a
        # program cannot take a batch).
        per_sample = [self.predict_one([x[i] for x in inputs]) for i in range(n)]
        return [np.concatenate([s[k] for s in per_sample]) for k in range(len(per_sample[0]))]

    def _predict_chunk(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        """Samples fed at once (already in the program's layout), outputs as predict_one gives them."""
        n = len(feeds[0])
        out = self.program.run({f.name: x for f, x in zip(self.inputs, feeds)})
        if self.probabilities:
            return [np.asarray(out[self.probabilities], np.float32).reshape(n, -1)]
        return [np.asarray(out[name], np.float32) for name in self.output_names]
