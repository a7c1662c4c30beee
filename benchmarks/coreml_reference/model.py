"""Load a saved .mlpackage / .mlmodel and run it: predict(list of batches) -> list of outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.documents import check, check_document, read_json, shown

from .batching import adapt, batch_plan, declared_shapes, run_batched
from .errors import CoreMLFormatError, InputMismatchError, UnsupportedOpError
from .values import BlobFile, feed_array
from .workspace import WorkspacePool

_PACKAGE_MANIFEST = {"itemInfoEntries": dict, "rootModelIdentifier": str}  # what names the model spec inside Data/


def load_spec(path: Path):
    """The Model protobuf and the weights folder, refusing anything that is not a whole Core ML model."""
    from convert.coreml import import_coremltools

    import_coremltools()  # first import quietly: coremltools logs about missing macOS-only modules
    from coremltools.proto import Model_pb2
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.exists():
        raise CoreMLFormatError(f"{path}: no such Core ML model")
    weights = None
    if path.is_dir():
        manifest = path / "Manifest.json"
        if not manifest.is_file():
            raise CoreMLFormatError(f"{path}: not an .mlpackage (no Manifest.json); truncated copy?")
        spec_file = path / "Data" / _root_model(path, manifest)
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


def _root_model(package: Path, manifest: Path) -> str:
    """The model spec's path inside Data/, as the package's Manifest.json names it."""
    fix = "re-run `mobilepack convert` (a copied .mlpackage needs every file)"
    source = f"{package}: damaged Manifest.json"
    info = check_document(read_json(manifest, fix, CoreMLFormatError), _PACKAGE_MANIFEST, source, fix,
                          error=CoreMLFormatError)
    root = info["rootModelIdentifier"]
    entry = info["itemInfoEntries"].get(root)
    check(entry, {"path": str}, source, fix, f"itemInfoEntries[{shown(root)}]", CoreMLFormatError)
    return entry["path"]


def classifier_labels(spec) -> list[str] | None:
    """Class labels of an ML Program classifier, from its classify op."""
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const"}
    for op in block.operations:
        if op.type == "classify":
            from .values import BlobFile, parse_value

            const = consts[op.inputs["classes"].arguments[0].name]
            values = parse_value(const.attributes["val"], BlobFile(None))
            return [str(v.item() if hasattr(v, "item") else v) for v in np.asarray(values).ravel()]
    return None


PRECISIONS = ("cpu", "gpu/ane")


class CoreMLReferenceRunner:
    """The project's own evaluator of saved Core ML models, for machines without Core ML.

    precision says how an ML Program's fp16-typed ops are computed:
      "cpu"      in float32, as Core ML's CPU runs them (the default): Apple's typed-execution
                 guide calls an ML Program's types a minimum precision, which the CPU exceeds
                 for every op it has no fp16 kernel for (it has a few, e.g. convolution on newer
                 hardware); fp16 inputs and outputs still hold fp16 values;
      "gpu/ane"  each fp16-typed op's output rounded to float16, as on the GPU and the
                 Neural Engine, e.g. CoreMLReferenceRunner(path, precision="gpu/ane").
    A NeuralNetwork (.mlmodel) has no typed tensors; its precision is the compute unit's:
      "cpu"      float32 throughout, which Core ML's CPU guarantees;
      "gpu/ane"  weights, inputs and every layer's output rounded to float16, arithmetic inside
                 a layer in float32 (nn.py gives the rule and its sources).
    """

    runtime = "coreml-reference"

    def __init__(self, path: Path, precision: str = "cpu"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        self.precision = precision
        self._workspaces = WorkspacePool()  # memory reused from one call to the next
        try:
            self._load(Path(path))
        except (CoreMLFormatError, UnsupportedOpError) as exc:
            text = str(exc)
            named = type(exc)(text if str(path) in text else f"{Path(path).name}: {text}")
            named.ops = getattr(exc, "ops", ())
            raise named from None

    def _load(self, path: Path) -> None:
        spec, weights = load_spec(path)
        self.path = path
        self.spec = spec
        kind = spec.WhichOneof("Type")
        desc = spec.description
        self.inputs = list(desc.input)
        self.probabilities = desc.predictedProbabilitiesName or None
        if kind == "mlProgram":
            from .mil import MILProgram

            self.program = MILProgram(spec, BlobFile(weights), fp16_ops=self.precision == "gpu/ane")
            plan, adapt_to = batch_plan(self.program, declared_shapes(spec)), adapt
        elif kind in ("neuralNetwork", "neuralNetworkClassifier"):
            from .nn import NeuralNetworkProgram
            from .nn_batching import nn_batch_plan

            nn = getattr(spec, kind)
            if kind == "neuralNetworkClassifier":
                self.probabilities = nn.labelProbabilityLayerName
            outputs = {o.name for o in desc.output} | {self.probabilities} - {None}
            self.program = NeuralNetworkProgram(nn, half=self.precision == "gpu/ane", outputs=tuple(outputs))
            plan, adapt_to = nn_batch_plan(nn, self.inputs), self.program.adapt
        else:
            raise CoreMLFormatError(f"{path}: Core ML model type {kind!r} is not a neural network")
        # why predict cannot run a batch in one pass (batching.py, nn_batching.py), or None
        self.per_sample_reason = plan if isinstance(plan, str) else None
        if self.per_sample_reason is None:
            adapt_to(plan)
        self.output_names = self._output_names()

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
        feeds = {f.name: self._feed(f, x) for f, x in zip(self.inputs, sample)}
        with self._workspaces.lend():
            out = self.program.run(feeds)
        if self.probabilities:
            return [np.asarray(out[self.probabilities], np.float32).reshape(1, -1)]
        return [np.asarray(out[n], np.float32) for n in self.output_names]

    def predict_named(self, feeds: dict) -> dict:
        """One call at the declared shapes: inputs by name, cast to their declared types, and
        outputs by name in their declared types, as Core ML's own predict takes and returns them."""
        from .values import feed_array, output_array

        missing = [f.name for f in self.inputs if f.name not in feeds]
        if missing:
            raise InputMismatchError(f"{self.path.name}: no value for input(s) {', '.join(missing)}")
        out = self.program.run({f.name: feed_array(f, feeds[f.name]) for f in self.inputs})
        named = {}
        for o in self.spec.description.output:
            if o.name in out:
                named[o.name] = output_array(o, out[o.name])
        return named

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
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
