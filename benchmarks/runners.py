"""One small interface for every runtime: predict(list of input batches) -> list of outputs.

Inputs are float32 in the model's own input space (raw pixels for images);
each runner quantizes and dequantizes as its artifact needs, so callers never
see the artifact's storage types.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks.errors import BenchDataError
from train.documents import check, check_document, read_json, shown
from train.errors import MobilepackError


class KerasRunner:
    runtime = "keras"

    def __init__(self, model):
        from train.loading import inference_function

        self.model = model
        self._fn = inference_function(model)

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self._fn(*inputs)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o, dtype=np.float32) for o in outs]


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu" or x.dtype.kind in "iu":  # float, or an integer input's own ids: as they are
        return x.astype(dtype, copy=False)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    # As LiteRT's own Quantize op: round half away from zero (std::round), then add the zero point.
    v = x / scale
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zero, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if np.dtype(detail["dtype"]).kind in "iu" and scale:
        return (q.astype(np.float32) - zero) * np.float32(scale)
    return q.astype(np.float32, copy=False)


class LiteRTRunner:
    """The LiteRT interpreter (ai_edge_litert), inputs and outputs in Keras order."""

    runtime = "litert"

    def __init__(self, path: Path | None, num_threads: int | None = None, input_names: list[str] | None = None,
                 *, content: bytes | None = None):
        from ai_edge_litert.interpreter import Interpreter

        # content: the model's bytes already in memory (`serve` runs exactly the bytes whose sha256 it checked)
        source = {"model_content": content} if content is not None else {"model_path": str(path)}
        self.interpreter = Interpreter(**source, num_threads=num_threads)
        self.inputs, self.outputs = _keras_order(self.interpreter, input_names)
        self._batch: int | None = None

    def _ensure_batch(self, n: int) -> None:
        if self._batch == n:
            return
        for d in self.inputs:
            self.interpreter.resize_tensor_input(d["index"], [n, *d["shape"][1:]])
        self.interpreter.allocate_tensors()
        self._batch = n

    def set_inputs(self, inputs: list[np.ndarray]) -> None:
        self._ensure_batch(len(inputs[0]))
        for d, x in zip(self.inputs, inputs):
            self.interpreter.set_tensor(d["index"], quantize(x, d))

    def read_outputs(self) -> list[np.ndarray]:
        return [dequantize(self.interpreter.get_tensor(d["index"]), d) for d in self.outputs]

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.set_inputs(inputs)
        self.interpreter.invoke()
        return self.read_outputs()


def _keras_order(interp, input_names: list[str] | None) -> tuple[list[dict], list[dict]]:
    """The signature maps Keras input names and output_0..n to tensor indices."""
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if "serving_default" not in interp.get_signature_list():
        return ins, outs
    sig = interp.get_signature_runner("serving_default")
    by_index = {d["index"]: d for d in ins + outs}
    in_map, out_map = sig.get_input_details(), sig.get_output_details()
    ordered_out = [by_index[out_map[k]["index"]] for k in sorted(out_map, key=_output_number)]
    names = input_names if input_names and set(input_names) == set(in_map) else list(in_map)
    return [by_index[in_map[k]["index"]] for k in names], ordered_out


def _output_number(name: str):
    tail = name.rsplit("_", 1)[-1]
    return (0, int(tail)) if tail.isdigit() else (1, name)


def predict_batched(runner, inputs: list[np.ndarray], batch_size: int, progress=None, label: str = "") -> list[np.ndarray]:
    """Run `runner` over the whole input set; returns the concatenated outputs."""
    n = len(inputs[0])
    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, batch_size):
        chunks.append(runner.predict([x[start : start + batch_size] for x in inputs]))
        if progress:
            progress(label, min(start + batch_size, n), n)
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


class CoreMLRunner:
    """Core ML itself (macOS only), through coremltools' prediction API."""

    runtime = "coreml"

    def __init__(self, path: Path, cpu_only: bool = False):
        from PIL import Image

        from convert.coreml.convert import import_coremltools

        ct = import_coremltools()
        self._image = Image
        # CPU only is the one setting that guarantees float32 ("The CPU guarantees float 32 precision",
        # coremltools typed-execution guide); otherwise Core ML partitions the model as it would on a phone.
        units = ct.ComputeUnit.CPU_ONLY if cpu_only else ct.ComputeUnit.ALL
        self.precision = "cpu" if cpu_only else None  # None: whichever units Core ML chose
        self.model = ct.models.MLModel(str(path), compute_units=units)
        spec = self.model.get_spec()
        self.inputs = list(spec.description.input)
        self.probabilities = spec.description.predictedProbabilitiesName or None
        self.labels = None
        if spec.WhichOneof("Type") == "neuralNetworkClassifier":
            self.labels = list(spec.neuralNetworkClassifier.stringClassLabels.vector)
        elif self.probabilities:
            from benchmarks.coreml_reference.model import classifier_labels

            self.labels = classifier_labels(spec)
        self.outputs = [o.name for o in spec.description.output]

    def _feed(self, feature, x):
        if feature.type.WhichOneof("Type") == "imageType":
            return self._image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
        from benchmarks.coreml_reference.values import feed_array

        return feed_array(feature, x)[None]  # float32, or an Int32 input's ids as they are

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        rows = []
        for i in range(len(inputs[0])):
            out = self.model.predict({f.name: self._feed(f, x[i]) for f, x in zip(self.inputs, inputs)})
            if self.probabilities:
                probs = out[self.probabilities]
                rows.append([np.asarray([[probs[label] for label in self.labels]], np.float32)])
            else:
                rows.append([np.asarray(out[n], np.float32) for n in self.outputs])
        return [np.concatenate([r[k] for r in rows]) for k in range(len(rows[0]))]


def artifact_runner(path: Path, target: str, **litert_options):
    """The runner for a .tflite (LiteRT) or a Core ML artifact."""
    return LiteRTRunner(path, **litert_options) if target == "tflite" else coreml_runner(path)


def coreml_runner(path: Path, precision: str = "gpu/ane"):
    """Core ML on macOS; the project's reference evaluator everywhere else.

    precision "gpu/ane" (the default, what the bench gates on) is what the GPU and the Neural Engine
    compute: an ML Program with each fp16-typed op rounded to fp16, a NeuralNetwork with float16
    weights and tensors; "cpu" is the float32 a NeuralNetwork gets on the CPU, e.g.
    coreml_runner(path, precision="cpu"). On macOS "cpu" loads the model for the CPU only and
    "gpu/ane" for all compute units, as an app does by default.
    """
    import platform

    if platform.system() == "Darwin":
        return CoreMLRunner(path, cpu_only=precision == "cpu")
    return CoreMLReferenceRunner(path, precision=precision)


# The Core ML reference evaluator (benchmarks/coreml_reference) is a library of its own: it imports nothing
# of mobilepack and raises its own errors. Below, its adapter: the `coreml-reference` runtime, and each
# entry point mobilepack calls, with the evaluator's errors turned into mobilepack's named errors (the
# same one-line messages; exit code 2).

class CoreMLModelError(MobilepackError):
    """A Core ML model the reference evaluator refuses: not a Core ML model, or a damaged one."""


class CoreMLUnsupportedError(MobilepackError):
    """A Core ML op or layer the reference evaluator does not implement (ops: the op types it lacks)."""

    def __init__(self, message: str, ops: tuple[str, ...] = ()):
        super().__init__(message)
        self.ops = tuple(ops)

    def __reduce__(self):  # pickled with its ops (a Ray worker's error)
        return type(self), (str(self), self.ops)


@contextmanager
def reference_errors():
    """The evaluator's errors as mobilepack's: a refused model is CoreMLModelError or CoreMLUnsupportedError,
    data that does not fit it (or that makes its prediction fail) BenchDataError, as for every runtime."""
    from benchmarks.coreml_reference import errors

    try:
        yield
    except errors.UnsupportedOpError as exc:
        raise CoreMLUnsupportedError(str(exc), exc.ops) from exc
    except (errors.InputMismatchError, errors.PredictionError) as exc:
        raise BenchDataError(str(exc)) from exc
    except errors.CoreMLReferenceError as exc:  # CoreMLFormatError, or any the evaluator adds
        raise CoreMLModelError(str(exc)) from exc


_PACKAGE_MANIFEST = {"itemInfoEntries": dict, "rootModelIdentifier": str}  # what names the model spec inside Data/


def check_package(path: Path) -> None:
    """An .mlpackage's Manifest.json read as every file mobilepack reads back (train/documents.py): a damaged
    one is one line naming `mobilepack convert` as the fix. The evaluator checks the rest."""
    path = Path(path)
    manifest = path / "Manifest.json"
    if not (path.is_dir() and manifest.is_file()):
        return
    fix = "re-run `mobilepack convert` (a copied .mlpackage needs every file)"
    source = f"{path}: damaged Manifest.json"
    info = check_document(read_json(manifest, fix, CoreMLModelError), _PACKAGE_MANIFEST, source, fix,
                          error=CoreMLModelError)
    root = info["rootModelIdentifier"]
    check(info["itemInfoEntries"].get(root), {"path": str}, source, fix, f"itemInfoEntries[{shown(root)}]",
          CoreMLModelError)


def load_spec(path: Path):
    """The evaluator's load_spec (the Model protobuf and the weights folder), its errors mobilepack's."""
    from benchmarks.coreml_reference import load_spec as load

    with reference_errors():
        check_package(path)
        return load(Path(path))


def activation_ranges(path: Path, inputs, names) -> dict:
    """The evaluator's W8A8 activation ranges (coreml_reference/calibrate.py), its errors mobilepack's."""
    from benchmarks.coreml_reference.calibrate import activation_ranges as ranges

    with reference_errors():
        check_package(path)
        return ranges(path, inputs, names)


class CoreMLReferenceRunner:
    """Core ML's prediction off macOS: the reference evaluator's MLModel behind predict(list of batches).

    precision "cpu" (the default) or "gpu/ane": see coreml_reference.MLModel. per_sample_reason says why
    a batch runs one sample at a time (None: in one pass)."""

    runtime = "coreml-reference"

    def __init__(self, path: Path, precision: str = "cpu"):
        from benchmarks.coreml_reference import MLModel

        with reference_errors():
            check_package(path)
            self.model = MLModel(path, precision=precision)
        self.precision = self.model.precision

    @property
    def per_sample_reason(self) -> str | None:
        return self.model.per_sample_reason

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        with reference_errors():
            return self.model.predict_batch(inputs)
