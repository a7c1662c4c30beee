"""Keras -> TFLite in the four standard flavours, with the real TF converter."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
import weakref
from pathlib import Path

import numpy as np

from train.errors import MobilepackError

from convert.calibration import CalibrationSet
from convert.errors import ConversionError, UnsupportedLayerError, layer_of, tool_error
from convert.shapes import example_shape, unrolled

TFLITE_DEFAULT = ("fp32", "fp16", "dynamic", "int8")  # what `convert` makes without --quant
# fp16-inference: fp16 weights plus the model metadata reduced_precision_support=fp16accfp16. LiteRT's
# XNNPack delegate reads it and sets XNN_FLAG_HINT_FP16_INFERENCE (xnnpack_delegate.cc), so an ARM CPU
# with fp16 arithmetic (ARMv8.2 FEAT_FP16: Cortex-A55/A76 and later) computes in fp16; x86 ignores the
# hint and computes in fp32. Only asked for by name: its verdict needs the ARM64 column.
TFLITE_QUANTS = (*TFLITE_DEFAULT, "fp16-inference")


def check_convertible(model) -> None:
    """Fixed-size float or integer inputs only; say which input breaks the rule."""
    for t in model.inputs:
        dims = tuple(t.shape)[1:]
        if any(d is None for d in dims):
            raise UnsupportedLayerError(
                f"input {t.name!r} has shape {tuple(t.shape)}; mobile artifacts need fixed sizes: give the size "
                f"your app feeds with --input-shape {example_shape(t.name, tuple(t.shape))} (batch first), "
                "or rebuild the model with keras.Input(shape=(...)) without None"
            )
        if not str(t.dtype).startswith(("float", "int", "uint")):
            raise UnsupportedLayerError(f"input {t.name!r} is {t.dtype}; mobile artifacts take float or integer "
                                        "inputs: feed it as float32 or int32 (e.g. ids into an Embedding)")


def convert_tflite(model, quant: str, calibration: CalibrationSet | None = None,
                   image_input: bool = False, int8_output: str = "float32") -> bytes:
    """Return the .tflite bytes for one quantization.

    int8 is full-integer: every op int8, uint8 input for images (raw pixels,
    scale 1) and float32 output unless int8_output='uint8'.
    """
    import tensorflow as tf

    with _converting(quant, model):  # unrolling a recurrent layer can fail too: that variant's error
        converter = _converter(model)
    if quant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant in ("fp16", "fp16-inference"):
        converter.target_spec.supported_types = [tf.float16]
    if quant == "fp16-inference":  # writes reduced_precision_support=fp16accfp16 into the model's metadata
        converter.target_spec._experimental_supported_accumulation_type = tf.float16
    elif quant == "int8":
        if calibration is None:
            raise ConversionError("int8 needs calibration data")
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if image_input:
            converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8 if int8_output == "uint8" else tf.float32
    with _converting(quant, model):
        return converter.convert()


def _converter(model):
    """The TF converter for a Keras model, its recurrent layers unrolled over their fixed length.

    A Keras 3 RNN layer traces to a while loop over a TensorList, which the converter refuses
    ("TensorListReserve" failed to legalize). Told that lists hold one sample, it makes a builtin
    WHILE, but that model then runs only at batch 1 (XNNPack fails to reshape it for more) and no
    delegate takes the loop. Its fused UNIDIRECTIONAL_SEQUENCE_LSTM needs the `api_implements`
    marker Keras 2 put on its LSTM function, which Keras 3 no longer writes. Unrolled, each step is
    builtin FULLY_CONNECTED and activation ops on shared weights: the same size, any batch, every
    op delegable.

    `from_keras_model` exports the model to a temporary SavedModel on every call: 6.7 of 10.6 s for
    EfficientNetB0 at 64 px. The export is made once per model (`_saved_model`) and every variant
    converts from it, as `from_keras_model` then does itself; the bytes are the same, the conversion
    metadata's model type included (tests/test_convert.py compares them).
    """
    import tensorflow as tf
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as conversion_metadata

    model = unrolled(model)
    folder = _saved_model(model)
    if folder is None:  # a model Keras cannot export: the converter's own fallback, a frozen graph
        return tf.lite.TFLiteConverter.from_keras_model(model)
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter._metadata.environment.modelType = conversion_metadata.ModelType.KERAS_MODEL  # what it is
    return converter


# Keras model -> its SavedModel (a TemporaryDirectory, removed with the model), or None when it cannot export.
_EXPORTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _saved_model(model) -> str | None:
    """The model's inference function as a SavedModel folder, exported once: what `from_keras_model` writes for a
    Keras 3 model (tensorflow/lite/python/lite.py, _convert_as_saved_model), endpoint and signature alike."""
    if model not in _EXPORTED:
        import functools
        import tempfile

        import keras
        import tensorflow as tf
        from tensorflow.lite.python.lite import _get_save_spec

        folder = tempfile.TemporaryDirectory(prefix="mobilepack-savedmodel-")
        try:
            archive = keras.export.ExportArchive()
            archive.track(model)
            if isinstance(model, (keras.src.models.Functional, keras.src.models.Sequential)):
                signature = tf.nest.map_structure(lambda x: tf.TensorSpec(x.shape, dtype=x.dtype, name=x.name),
                                                  model.inputs)
                if isinstance(signature, list) and len(signature) > 1:
                    signature = [signature]
            else:
                spec = _get_save_spec(model)
                if not spec:
                    raise ValueError("the model has never been called")
                signature = [spec]
            archive.add_endpoint("serve", functools.partial(model.__call__, training=False), signature)
            with contextlib.redirect_stdout(io.StringIO()):  # it lists the endpoint on stdout
                archive.write_out(folder.name)
        except Exception:  # noqa: BLE001 - as from_keras_model does: convert the frozen graph instead
            folder.cleanup()
            folder = None
        _EXPORTED[model] = folder
    folder = _EXPORTED[model]
    return None if folder is None else folder.name


@contextlib.contextmanager
def _converting(quant: str, model=None):
    """Run a converter step quietly, turning whatever it raises into one named error.

    The converter prints its temporary SavedModel's endpoints to stdout and warns about
    statistics; neither is for our user. It raises many unrelated exception types.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except (OSError, MobilepackError):
        raise  # a full disk or a forbidden path: the command line names the path and the fix
    except Exception as exc:
        raise _conversion_error(exc, quant, model) from exc  # chained: --debug shows the converter's own error


def _representative(calibration: CalibrationSet, order: list[int] | None = None):
    """One sample at a time, by input name when the names are known: the converter matches a dict to its
    signature's inputs, whereas a list goes by position, which is not the Keras order for several inputs.
    LiteRT's QuantizationDebugger takes lists only: it sets its interpreter's inputs in that interpreter's
    order, which `order` gives (indices into the calibration's inputs, from _input_order)."""
    def gen():
        for i in range(len(calibration.inputs[0])):
            sample = [a[i : i + 1] for a in calibration.inputs]
            if order is not None:
                yield [sample[k] for k in order]
            else:
                yield dict(zip(calibration.names, sample)) if calibration.names else sample

    return gen


_SIGNATURE_ORDER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Keras model -> its inputs' converted order


def _input_order(model, calibration: CalibrationSet) -> list[int]:
    """The converted model's input order, as indices into the calibration's (Keras-ordered) inputs.

    Read once per model from a float conversion's signature: its inputs are in the order every
    conversion of the model gives them. One input needs no conversion."""
    if len(calibration.inputs) < 2 or not calibration.names:
        return list(range(len(calibration.inputs)))
    if model not in _SIGNATURE_ORDER:
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_content=convert_tflite(model, "fp32"))
        runner = interp.get_signature_runner("serving_default")
        by_index = {d["index"]: name for name, d in runner.get_input_details().items()}
        _SIGNATURE_ORDER[model] = [by_index[d["index"]] for d in interp.get_input_details()]
    return [calibration.names.index(name) for name in _SIGNATURE_ORDER[model]]


def _conversion_error(exc: Exception, quant: str, model=None) -> ConversionError:
    """An op the converter names as unsupported, or else the converter's own first line."""
    text = str(exc)
    missing = re.search(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
    if missing:  # the op and the layer that made it are the whole story
        node = re.search(r'fused\["%s:", "([^"@]+)' % missing.group(1), text)
        layer = layer_of(node.group(1) if node else "", model) if model is not None else "unknown"
        return UnsupportedLayerError(f"TFLite {quant}: layer {layer} uses TensorFlow op {missing.group(1)}, which has "
                                     "no builtin TFLite kernel; replace it or use --target coreml")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    ops = [ln for ln in lines if "op" in ln.lower() and ("not supported" in ln.lower() or "failed to legalize" in ln.lower())]
    hint = "try --quant fp32,fp16,dynamic" if quant == "int8" else ""
    if ops:
        return UnsupportedLayerError(f"TFLite {quant}: converter failed: {ops[0][:300]}; "
                                     f"{hint + '; ' if hint else ''}run with --debug for the full log")
    return tool_error(f"TFLite {quant}", exc, hint=hint)


def describe_tensors(path: Path) -> tuple[list[dict], list[dict]]:
    """Input and output tensor descriptions as the LiteRT interpreter sees them."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    sig = interp.get_signature_list().get("serving_default", {})

    def one(d: dict, sig_name: str | None) -> dict:
        scale, zero = d["quantization"]
        return {
            "name": d["name"],
            "signature_name": sig_name,
            "shape": [int(v) for v in d["shape"]],
            "shape_signature": [int(v) for v in d["shape_signature"]],
            "dtype": np.dtype(d["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None,
        }

    ins = interp.get_input_details()
    outs = interp.get_output_details()
    in_names = _signature_names(interp, "inputs", ins, sig)
    out_names = _signature_names(interp, "outputs", outs, sig)
    return [one(d, n) for d, n in zip(ins, in_names)], [one(d, n) for d, n in zip(outs, out_names)]


def _signature_names(interp, kind: str, details: list[dict], sig: dict) -> list[str | None]:
    if not sig:
        return [None] * len(details)
    runner = interp.get_signature_runner("serving_default")
    mapping = runner.get_input_details() if kind == "inputs" else runner.get_output_details()
    by_index = {v["index"]: k for k, v in mapping.items()}
    return [by_index.get(d["index"]) for d in details]


def quantization_sqnr(float_values, quantized_values, scale, zero_point) -> float:
    """Worst per-channel SQNR (dB) of a tensor against its own int8 rounding.

    It looks only at the float tensor and its calibrated scale, so it measures the
    damage done where the tensor is quantized, not error inherited from upstream
    layers. It catches what Google's rmse/scale misses: one channel with a huge range
    makes the step larger than every other channel's signal, yet the error is still
    "one step".
    """
    f = np.concatenate([np.asarray(v, np.float64).reshape(-1, np.shape(v)[-1]) for v in float_values])
    deq = (np.clip(np.rint(f / scale) + zero_point, -128, 127) - zero_point) * scale
    signal = (f ** 2).sum(axis=0)
    noise = ((f - deq) ** 2).sum(axis=0)
    live = signal > 0
    if not live.any():
        return float("inf")
    return float(np.min(10 * np.log10(signal[live] / np.maximum(noise[live], 1e-30))))


def _debugger(model, calibration: CalibrationSet):
    """TF's QuantizationDebugger for the model: one calibrated conversion per model and calibration, kept.

    Its calibrated model is what every int8 candidate of the budget search quantizes (`convert_tflite_mixed`):
    the layers kept float change only the last step, so the conversion and its calibration are not redone.
    """
    import tensorflow as tf

    cached = _DEBUGGERS.get(model)
    if cached is not None and cached[0] is calibration:
        return cached[1]
    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(calibration)
    order = _input_order(model, calibration)
    # Float kernels must be allowed for the layers that stay float.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_representative(calibration, order), debug_options=_debug_options())
    _DEBUGGERS[model] = (calibration, debugger)
    return debugger


# Keras model -> (the CalibrationSet, its QuantizationDebugger): the calibrated conversion, made once.
_DEBUGGERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _debug_options(denylist: list[str] | None = None):
    import tensorflow as tf

    return tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=denylist or None, layer_direct_compare_metrics={"quantization_sqnr": quantization_sqnr})


def layer_sensitivity(model, calibration: CalibrationSet, int8_model: bytes) -> list[tuple[list[str], float]]:
    """Tensors whose int8 rounding hurts most, lowest quantization SQNR first.

    Each entry is the group of layers to keep float so that the tensor is never
    quantized: the layer that produces it and every layer that reads it.
    """
    import csv

    with _converting("int8"):
        debugger = _debugger(model, calibration)
        debugger.run()
        buf = io.StringIO()
        debugger.layer_statistics_dump(buf)
    buf.seek(0)
    readers = _readers(int8_model)
    scores = [(row["tensor_name"], float(row["quantization_sqnr"])) for row in csv.DictReader(buf)
              if row.get("quantization_sqnr") not in (None, "", "nan")]
    return [([name, *readers.get(name, [])], score) for name, score in sorted(scores, key=lambda s: s[1])]


def _readers(model_bytes: bytes) -> dict[str, list[str]]:
    """tensor name -> output names of the ops that read it, from the int8 graph."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    out: dict[str, list[str]] = {}
    for op in interp._get_ops_details():  # the public API has no graph walk
        for i in op["inputs"]:
            if i in names:
                out.setdefault(names[i], []).extend(names[o] for o in op["outputs"] if o in names)
    return out


def convert_tflite_mixed(model, calibration: CalibrationSet, float_layers: list[str]) -> bytes:
    """int8 except `float_layers`, which keep float kernels (float32 input and output).

    The debugger's own last step (QuantizationDebugger.get_nondebug_quantized_model, with these layers
    denylisted) on its kept calibrated model: the bytes a new debugger would give, without converting again.
    """
    from tensorflow.lite.python import convert as tflite_convert

    with _converting("int8"):
        debugger, options = _debugger(model, calibration), _debug_options(float_layers)
        return tflite_convert.mlir_quantize(
            debugger.calibrated_model, disable_per_channel=debugger.converter._experimental_disable_per_channel,
            fully_quantize=options.fully_quantize, enable_numeric_verify=False, denylisted_ops=options.denylisted_ops,
            denylisted_nodes=options.denylisted_nodes)
