"""Keras -> Core ML (ML Program .mlpackage and NeuralNetwork .mlmodel) with real coremltools.

coremltools 9 does not recognise Keras 3 model objects, so the model reaches it
as a traced tf.function concrete function with a fixed batch of 1.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
import weakref

import numpy as np

from train.errors import MobilepackError
from train.loading import inference_function
from train.preprocessing import Preprocessing

from convert.coreml.compress import compress, compressible
from convert.coreml.w8a8 import check_w8a8, w8a8
from convert.coreml.variants import FORMAT_IOS, VARIANTS, coreml_quants
from convert.errors import ConversionError, UnsupportedLayerError, layer_of, tool_error
from convert.shapes import unrolled

COREML_QUANTS = {fmt: coreml_quants(fmt) for fmt in FORMAT_IOS}
SUFFIX = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}


def imagetype_scale_bias(prep: Preprocessing) -> tuple[float, list[float]]:
    """Core ML computes scale * pixel + bias per channel before the model.

    With normalization inside the model that is the identity; otherwise it is
    (x - mean) / std, which Core ML can only express with one scale for all channels.
    """
    if prep.normalization_in_model:
        return 1.0, [0.0] * prep.channels
    if len(set(prep.std)) != 1:
        raise UnsupportedLayerError(
            f"Core ML ImageType takes one scale for all channels but std is {list(prep.std)}; "
            "bake normalization into the model (a Normalization layer) instead"
        )
    scale = 1.0 / prep.std[0]
    return scale, [-m * scale for m in prep.mean]


def _quiet():
    """coremltools logs progress bars and version warnings; none of it is for our user."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return stack


def import_coremltools():
    from convert.coreml.tf_ops import register

    with _quiet():
        import coremltools as ct
        register()
    return ct


def convert_coreml(ctx, fmt: str, quant: str, keep_float: tuple[str, ...] = ()):
    """Return an in-memory coremltools MLModel of `ctx.model` (a ConversionContext) for one format and quantization.

    An image input described by the context's preprocessing becomes an ImageType (with the labels, a
    classifier); keep_float names weight consts that compression must leave as they are.
    """
    ct = import_coremltools()
    if quant not in COREML_QUANTS[fmt]:
        valid = ", ".join(COREML_QUANTS[fmt])
        raise ConversionError(f"Core ML {fmt} has no quantization {quant!r}; valid: {valid}")
    if quant == "w8a8":
        check_w8a8(ctx.calibration, ctx.activation_ranges)
    try:
        with _quiet():
            mlmodel, target = _converted(ct, ctx, fmt, quant)
            if fmt == "neuralnetwork" and quant == "fp16":
                mlmodel = _neuralnetwork_fp16(mlmodel)
            elif quant == "w8a8":
                mlmodel = w8a8(mlmodel, ctx.calibration, ctx.activation_ranges)
            else:
                mlmodel = compress(mlmodel, quant, keep_float)
    except (OSError, MobilepackError):
        raise  # a full disk or a forbidden path: the command line names the path and the fix
    except Exception as exc:  # coremltools raises anything: IndexError, AssertionError, ValueError, ...
        raise _error(exc, fmt, ctx.model) from exc  # chained: --debug shows coremltools' own error
    _set_metadata(mlmodel, ctx.metadata, quant, target)
    return mlmodel


# Keras model -> {conversion settings: (uncompressed MLModel, deployment target)}. The weight compressions
# of one precision and iOS (int8w, pal6, pal4; every candidate of a budget search) start from the same
# conversion, so it is made once; coremltools' compression reads the model's spec and never changes it.
_CONVERTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _converted(ct, ctx, fmt: str, quant: str):
    """ct.convert's model of ctx.model for the variant (before compression), and its deployment target."""
    variant = VARIANTS[quant]
    target = f"iOS{variant.needs_ios(fmt)}"
    shared = compressible(quant)  # the only variants whose steps leave the converted model as it was
    key = (fmt, variant.compute, target, ctx.image_prep, tuple(ctx.labels or ()))
    cache = _CONVERTED.setdefault(ctx.model, {}) if shared else {}
    if key not in cache:
        concrete, kwargs = _convert_arguments(ct, ctx, fmt, variant.compute)
        try:
            mlmodel = ct.convert([concrete], minimum_deployment_target=getattr(ct.target, target), **kwargs)
        except ValueError as exc:
            # Layers such as GELU need NeuralNetwork spec 5: the lowest target that holds the model.
            if fmt != "neuralnetwork" or "requires model to be of version" not in str(exc):
                raise
            target = "iOS14"
            mlmodel = ct.convert([concrete], minimum_deployment_target=ct.target.iOS14, **kwargs)
        if not shared:
            return mlmodel, target
        cache[key] = (mlmodel, target)
    return cache[key]


def uncompressed(ctx, fmt: str, quant: str):
    """The model a compressed variant was made from: the same conversion, before compression (cached)."""
    ct = import_coremltools()
    with _quiet():
        return _converted(ct, ctx, fmt, quant)[0]


def _convert_arguments(ct, ctx, fmt: str, compute: str):
    """The traced function and ct.convert's keyword arguments: inputs, outputs, classifier, precision."""
    import tensorflow as tf

    model, prep, labels = unrolled(ctx.model), ctx.image_prep, ctx.labels
    # An integer input (token ids) stays one: Core ML multiarrays hold int32, not int64.
    specs = [tf.TensorSpec((1, *tuple(t.shape)[1:]), tf.int32 if "int" in str(t.dtype) else tf.float32,
                           name=_clean(t.name)) for t in model.inputs]
    concrete = _inlinable(inference_function(model, input_signature=specs).get_concrete_function())
    image = prep is not None and len(specs) == 1
    classifier = image and bool(labels)
    if image:
        scale, bias = imagetype_scale_bias(prep)
        layout = ct.colorlayout.RGB if prep.channel_order == "RGB" else ct.colorlayout.BGR
        inputs = [ct.ImageType(name=specs[0].name, shape=tuple(specs[0].shape), scale=scale, bias=bias,
                               color_layout=layout)]
    else:
        # float32 in and out whatever the compute: from iOS 16 coremltools would otherwise type an fp16
        # program's tensors float16, changing the contract the manifest and the apps rely on.
        inputs = [ct.TensorType(name=s.name, shape=tuple(s.shape), dtype=np.int32 if s.dtype.is_integer else np.float32)
                  for s in specs]
    kwargs = {"convert_to": fmt, "inputs": inputs, "source": "tensorflow",
              "classifier_config": ct.ClassifierConfig(labels) if classifier else None}
    if fmt == "mlprogram":
        kwargs["compute_precision"] = ct.precision.FLOAT16 if compute == "float16" else ct.precision.FLOAT32
        if not classifier:
            # named as in the traced graph (Identity, Identity_1, ...): coremltools needs names for >1 output
            kwargs["outputs"] = [ct.TensorType(name=t.name.split(":")[0], dtype=np.float32) for t in concrete.outputs]
    return concrete, kwargs


def _inlinable(concrete):
    """The traced function with every call allowed to be inlined into it.

    Keras' TF backend runs a grouped convolution through a tf.function with jit_compile=True
    (keras/src/backend/tensorflow/nn.py) because TF's CPU kernel lacks groups; the call carries
    _XlaMustCompile, which stops grappler from inlining it, and coremltools then meets a
    StatefulPartitionedCall it cannot convert. Inlined, the Conv2D inside converts with its groups.
    """
    from tensorflow.core.framework import attr_value_pb2

    for op in concrete.graph.get_operations():
        if op.type in ("StatefulPartitionedCall", "PartitionedCall") and "_XlaMustCompile" in op.node_def.attr \
                and op.get_attr("_XlaMustCompile"):
            op._set_attr("_XlaMustCompile", attr_value_pb2.AttrValue(b=False))  # noqa: SLF001 - no public setter
    return concrete


def _neuralnetwork_fp16(mlmodel):
    from coremltools.models.neural_network import quantization_utils

    return quantization_utils.quantize_weights(mlmodel, nbits=16)


def weight_errors(compressed, original) -> list[tuple[str, float]]:
    """Compressed weight consts, worst reproduced first: ||W' - W|| / ||W|| per tensor.

    `compressed` is from convert_coreml, `original` the conversion it was compressed from (uncompressed()),
    so the weights have the same names; the expansion is coremltools' own decompression of each op.
    """
    originals = {op.name: op.val.val for op in original._mil_program.functions["main"].operations
                 if op.op_type == "const"}
    errors = []
    for op in compressed._mil_program.functions["main"].operations:
        if not op.op_type.startswith("constexpr_") or op.op_type == "constexpr_cast":
            continue
        dense = np.asarray(op.materialized_val_inference(), np.float32)
        name = re.sub(r"_(palettized|quantized)$", "", op.name)
        w = originals.get(name)
        if w is not None and w.shape == dense.shape:
            w = np.asarray(w, np.float32)
            errors.append((name, float(np.linalg.norm(dense - w) / max(np.linalg.norm(w), 1e-30))))
    return sorted(errors, key=lambda e: -e[1])


def _set_metadata(mlmodel, metadata: dict, quant: str, target: str) -> None:
    mlmodel.author = metadata.get("author", "mobilepack")
    mlmodel.license = metadata.get("license", "unspecified")
    mlmodel.short_description = metadata.get("description", "Converted by mobilepack")
    mlmodel.version = metadata.get("version", "1")
    user = mlmodel.user_defined_metadata
    user["mobilepack.quantization"] = quant
    user["mobilepack.minimum_deployment_target"] = target
    user["mobilepack.source_model_sha256"] = metadata.get("source_model_sha256", "")
    user["mobilepack.tools"] = json.dumps(metadata.get("tools", {}), sort_keys=True)
    if metadata.get("preprocessing") is not None:
        user["mobilepack.preprocessing"] = json.dumps(metadata["preprocessing"], sort_keys=True)


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name.split(":")[0]) or "input"


def _error(exc: Exception, fmt: str, model) -> ConversionError:
    text = str(exc)
    op = re.search(r"TF op '(\w+)' not implemented", text)
    node = re.search(r'name: "([^"]+)"', text)
    other = "neuralnetwork" if fmt == "mlprogram" else "mlprogram"
    if op:
        layer = layer_of(node.group(1) if node else "", model)
        return UnsupportedLayerError(  # recognised: the op and its layer are the whole story
            f"Core ML {fmt}: layer {layer} uses TensorFlow op {op.group(1)}, which coremltools cannot convert; "
            f"replace it or use --target tflite"
        )
    failing = _failing_node(exc)
    where = f"TensorFlow op {failing.op} of layer {layer_of(failing.name, model)}" if failing else ""
    return tool_error(f"Core ML {fmt}", exc, where, f"try --coreml-format {other} or --target tflite")


def _failing_node(exc: BaseException):
    """The TF graph node coremltools was translating when it failed (innermost), if it got that far.

    Its TF frontend converts one node per call, with the node in a local named `node`; when
    the error itself names nothing (an IndexError from a Keras RNN's loop), that node does.
    """
    found, tb = None, exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        node = frame.f_locals.get("node") if "coremltools" in frame.f_code.co_filename else None
        if isinstance(getattr(node, "op", None), str) and isinstance(getattr(node, "name", None), str):
            found = node
        tb = tb.tb_next
    return found
