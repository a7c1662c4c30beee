"""One artifact at a time: convert, write into the staging folder, describe for the manifest."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

from train.fsutil import atomic_write_bytes, atomic_write_text
from train.loading import sha256_file, size_on_disk

from convert.context import ConversionContext
from convert.coreml.convert import SUFFIX, convert_coreml
from convert.coreml.compress import recorded_fallbacks
from convert.coreml.variants import VARIANTS
from convert.manifest import Artifact
from convert.tflite.convert import convert_tflite, convert_tflite_mixed, describe_tensors

TFLITE_FLOAT_LAYER_REASON = (
    "these tensors lose most to int8 rounding (lowest worst-channel SQNR against their own rounding, measured "
    "with LiteRT's QuantizationDebugger on the calibration data); their producer and readers stay float so "
    "they are never quantized; added most sensitive first until the candidate fit the budget")


def variant_name(target: str, fmt: str, quant: str) -> str:
    """The artifact's name (and file stem): model_int8, model_mlprogram_pal4, ..."""
    return f"model_{quant}" if target == "tflite" else f"model_{fmt}_{quant}"


def tflite_artifact(ctx: ConversionContext, quant: str, float_layers=None, data: bytes | None = None) -> Artifact:
    """Write one .tflite (converting it unless `data` already holds it) and describe it."""
    name = variant_name("tflite", "tflite", quant) + ("_mixed" if float_layers else "")
    if float_layers:
        data = convert_tflite_mixed(ctx.model, ctx.calibration, sorted({n for group, _ in float_layers for n in group}))
    elif data is None:
        data = convert_tflite(ctx.model, quant, ctx.calibration, ctx.image_input, ctx.config.int8_output)
    path = ctx.stage / f"{name}.tflite"
    atomic_write_bytes(path, data)
    inputs, outputs = describe_tensors(path)
    notes = _tflite_notes(quant, ctx)
    if float_layers:
        notes = {**notes, "weights": "int8 except the float layers", "input": "float32 (quantized inside)",
                 "output": "float32",
                 "float_layers": [{"tensor": group[0], "layers": group, "quantization_sqnr_db": round(score, 2)}
                                  for group, score in float_layers],
                 "float_layer_reason": TFLITE_FLOAT_LAYER_REASON}
    return Artifact(name=name, file=path.name, sha256=sha256_file(path), size_bytes=len(data), target="tflite",
                    format="tflite", quantization=quant, inputs=inputs, outputs=outputs, notes=notes)


def coreml_artifact(ctx: ConversionContext, fmt: str, quant: str, keep=None) -> Artifact:
    """Convert and write one Core ML model; `keep` names weights (with their error) left uncompressed."""
    mlmodel = convert_coreml(ctx, fmt, quant, tuple(n for n, _ in keep or ()))
    return save_coreml(ctx, mlmodel, fmt, quant, keep)


def save_coreml(ctx: ConversionContext, mlmodel, fmt: str, quant: str, keep=None) -> Artifact:
    from convert.coreml.describe import describe_coreml

    name = variant_name("coreml", fmt, quant) + ("_mixed" if keep else "")
    path = ctx.stage / f"{name}{SUFFIX[fmt]}"
    mlmodel.save(str(path))
    reproducible_coreml(path)
    inputs, outputs, info = describe_coreml(path)
    notes = {**_coreml_notes(fmt, quant), **info,
             "minimum_deployment_target": mlmodel.user_defined_metadata["mobilepack.minimum_deployment_target"]}
    if quant == "w8a8":
        notes.update(_w8a8_notes(ctx, mlmodel))
    fallbacks = recorded_fallbacks(mlmodel)
    if fallbacks:
        notes["compression_fallbacks"] = fallbacks
    if keep:
        notes["float_layers"] = [{"tensor": n, "layers": [n], "relative_weight_error": round(e, 4)} for n, e in keep]
        notes["float_layer_reason"] = (f"the weights {quant} reproduces worst (relative error ||W'-W||/||W||), "
                                       "left uncompressed, worst first, until the candidate fit the budget")
    return Artifact(name=name, file=path.name, sha256=sha256_file(path), size_bytes=size_on_disk(path),
                    target="coreml", format=fmt, quantization=quant, inputs=inputs, outputs=outputs, notes=notes)


def reproducible_coreml(path: Path) -> None:
    """Make a saved Core ML model the same bytes every run, so its sha256 is too.

    coremltools serializes the spec's metadata map in an order that changes from process to process,
    and names an .mlpackage's items by UUIDs it draws at every save. The spec is rewritten with
    protobuf's deterministic (sorted) map order, and the items named by their path; Core ML reads those
    identifiers only as keys (rootModelIdentifier -> its item).
    """
    from coremltools.proto import Model_pb2

    spec_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel" if path.is_dir() else path
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    atomic_write_bytes(spec_file, spec.SerializeToString(deterministic=True))
    if not path.is_dir():
        return
    manifest = path / "Manifest.json"
    doc = json.loads(manifest.read_text())
    entries = doc["itemInfoEntries"]
    ids = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlpackage:{item['path']}")) for old, item in entries.items()}
    doc["itemInfoEntries"] = {ids[old]: item for old, item in entries.items()}
    doc["rootModelIdentifier"] = ids[doc["rootModelIdentifier"]]
    atomic_write_text(manifest, json.dumps(doc, indent=4, sort_keys=True) + "\n")  # coremltools' own layout


def with_tflite_metadata(ctx: ConversionContext, artifact: Artifact) -> Artifact:
    """Give an image classifier's .tflite standard TFLite metadata (MediaPipe / ML Kit refuse float models without)."""
    from convert.tflite.metadata import add_metadata

    if artifact.target != "tflite" or not (ctx.image_input and ctx.labels):
        return artifact
    path = ctx.stage / artifact.file
    sha = ctx.metadata["source_model_sha256"]
    info = {"name": f"{ctx.model_path.stem} ({artifact.quantization})",
            "description": f"{len(ctx.labels)}-class image classifier, {artifact.quantization}, converted by "
                           f"mobilepack from {ctx.model_path.name} (sha256 {sha[:12]})",
            "version": sha[:12], "author": ctx.metadata.get("author", "mobilepack"),
            "license": ctx.metadata.get("license", "unspecified")}
    data = add_metadata(path.read_bytes(), ctx.prep, ctx.labels, info)
    atomic_write_bytes(path, data)
    notes = {**artifact.notes, "metadata": "TFLite metadata: normalization, labels.txt packed, author, license"}
    return dataclasses.replace(artifact, sha256=sha256_file(path), size_bytes=len(data), notes=notes)


def _coreml_notes(fmt: str, quant: str) -> dict:
    variant = VARIANTS[quant]
    compute = variant.compute
    if fmt == "neuralnetwork":  # no typed precision: each compute unit uses its own (coremltools, Typed Execution)
        compute = "float32 on the CPU, float16 on the GPU and Neural Engine"
    return {"weights": variant.weights, "compute_precision": compute}


def _w8a8_notes(ctx: ConversionContext, mlmodel) -> dict:
    from convert.coreml.w8a8 import activation_pairs

    count = (ctx.calibration.description or {}).get("count", len(ctx.calibration.inputs[0]))
    return {"activations": f"int8, linear symmetric per tensor: {len(activation_pairs(mlmodel))} quantize/dequantize "
                           f"pair(s), ranges from {count} calibration sample(s) run through the Core ML reference "
                           "evaluator at the CPU's precision, as coremltools' calibration runs Core ML (CPU_ONLY)"}


def _tflite_notes(quant: str, ctx: ConversionContext) -> dict:
    if quant == "fp16":
        return {"weights": "float16", "activations": "float32"}
    if quant == "fp16-inference":
        return {"weights": "float16", "activations": "float16 on ARM CPUs with fp16 arithmetic (XNNPack reads "
                "reduced_precision_support=fp16accfp16), float32 elsewhere"}
    if quant == "dynamic":
        return {"weights": "int8", "activations": "float32 (int8 kernels where supported)"}
    if quant == "int8":
        return {"weights": "int8", "activations": "int8",
                "input": "uint8 raw pixels" if ctx.image_input else _int8_input(ctx.model),
                "output": ctx.config.int8_output}
    return {"weights": "float32", "activations": "float32"}


def _int8_input(model) -> str:
    """What a full-integer .tflite takes for a model that is not an image classifier."""
    ints = [t.name for t in model.inputs if "int" in str(t.dtype)]
    floats = "float32, quantized inside the model"
    return f"{', '.join(ints)}: integers as given (ids); the others {floats}" if ints else floats
