"""W8A8 (int8 weights, int8 activations, iOS 17) with coremltools' own graph passes, calibrated off macOS.

coremltools' linear_quantize_activations calibrates by running Core ML (macOS only), then applies three
graph passes with the ranges it collected. Here the ranges come from a provider injected by the caller
(mobilepack passes the Core ML evaluator's, through benchmarks.runners.activation_ranges; convert may not
import benchmarks), for the very tensors coremltools would record: its own ModelDebugger picks them
and its own concat adjustment evens them out. The passes, and so the quantize/dequantize ops, scales
and zero points, are coremltools' own, run as linear_quantize_activations runs them. Then the weights
are quantized to int8 per channel as coremltools' W8A8 example does (activations first).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from convert.errors import UsageError

# (saved float .mlpackage, one batch-first array per input, tensor names) -> {name: {"rmin", "rmax"}}
ActivationRanges = Callable[[Path, tuple, list], dict]


def calibration_tensors(mlmodel) -> tuple[list[str], list[list[str]]]:
    """The tensors coremltools calibrates (its ModelDebugger's choice: every non-const op output that can
    be a model output, other than the model's outputs) and its concat groups (inputs + output of each concat)."""
    from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger

    debugger = ModelDebugger(mlmodel)
    outputs = {o.name for o in mlmodel.get_spec().description.output}
    ops = debugger.block_info.operations
    names = [n for n in debugger.get_intermediate_output_names(lambda op: op.spec.type != "const")
             if n not in outputs and ModelDebugger.get_output_feature_type(n, ops) is not None]
    return sorted(names), debugger._get_concat_op_info()


def activation_config():
    """coremltools' W8A8 activation config: int8, linear symmetric (its documented example)."""
    from coremltools.optimize import coreml as cto

    return cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))


def insert_quantize_dequantize(mlmodel, stats: dict, config=None):
    """linear_quantize_activations' graph passes, given the ranges its calibration would have collected."""
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto import load as milproto_to_pymil
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils

    config = config or activation_config()
    passes = []
    for name in ("insert_prefix_quantize_dequantize_pair", "insert_suffix_quantize_dequantize_pair"):
        graph_pass = PASS_REGISTRY[f"compression::{name}"]
        graph_pass.set_options([PassOption("config", config)])
        graph_pass.set_options([PassOption("activation_stats", stats)])
        passes.append(graph_pass)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    return model_utils._apply_graph_pass(mlmodel, passes, spec_version=_SPECIFICATION_VERSION_IOS_17,
                                         pymil_load_func=milproto_to_pymil.load,
                                         skip_model_load=mlmodel.__proxy__ is None)


def calibrated_stats(mlmodel, inputs: tuple, ranges: ActivationRanges) -> dict:
    """The ranges of coremltools' tensors over the calibration inputs, concat groups evened as coremltools does."""
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _adjust_concat_surrounding_activation_stats,
    )

    names, concats = calibration_tensors(mlmodel)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "float.mlpackage"
        mlmodel.save(str(path))
        stats = ranges(path, inputs, names)
    _adjust_concat_surrounding_activation_stats(concats, stats)
    return stats


def check_w8a8(calibration, ranges: ActivationRanges | None) -> None:
    """Before converting: w8a8 needs calibration data and someone to run the float model on it."""
    if ranges is None:
        raise UsageError("--quant w8a8 calibrates activations with the Core ML reference evaluator; "
                         "run it through `mobilepack convert`, which provides it")
    if calibration is None or not len(calibration.inputs[0]):
        raise UsageError("--quant w8a8 needs calibration data; give --calibration digits|DIR|FILE.npz")


def w8a8(mlmodel, calibration, ranges: ActivationRanges):
    """int8 activations (quantize/dequantize pairs from calibrated ranges), then int8 per-channel weights."""
    from coremltools.optimize import coreml as cto

    stats = calibrated_stats(mlmodel, calibration.inputs, ranges)
    quantized = insert_quantize_dequantize(mlmodel, stats)
    weights = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel"))
    return cto.linear_quantize_weights(quantized, weights)


def activation_pairs(mlmodel) -> list[tuple[str, float, int]]:
    """(input tensor, scale, zero point) of every quantize op: what the artifact's notes list."""
    out = []
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type == "quantize":
            zp = op.zero_point.val if op.zero_point is not None else 0
            out.append((op.input.name, float(np.asarray(op.scale.val)), int(np.asarray(zp))))
    return out
