"""Weight compression of a converted ML Program (coremltools.optimize.coreml), layer by layer when it must.

int4b quantizes blocks of 32 input channels, pal4g palettizes groups of 16 output channels. coremltools
skips a layer whose channels the block or group does not divide, with nothing but a log line (which
our user never sees). Here such a layer gets the largest block or group that divides its channels
instead, and the artifact records it; a weight coremltools still leaves uncompressed is recorded too.
"""

from __future__ import annotations

import json
import re

import numpy as np

WEIGHT_THRESHOLD = 2048  # coremltools' default: only weights with more elements than this are compressed
INT4_BLOCK = 32
PAL_GROUP = 16
# A block's fp16 scale is amortised over its weights; below 8 input channels per block a per-channel
# scale (one block spanning the whole input) is the smaller, and still honest, choice.
MIN_INT4_BLOCK = 8
FALLBACKS_KEY = "mobilepack.compression_fallbacks"  # user-defined metadata: what was done per layer


def compressible(quant: str) -> bool:
    """Whether `compress` makes this variant (a new model from the converted one's spec)."""
    return quant.removesuffix("-fp32") in ("int8w", "pal6", "pal4", "int4b", "pal4g")


def compress(mlmodel, quant: str, keep_float: tuple[str, ...] = ()):
    """The compressed model (fallbacks recorded in its metadata), or the model itself for fp32/fp16."""
    from coremltools.optimize import coreml as cto

    base = quant.removesuffix("-fp32")
    if not compressible(quant):
        return mlmodel
    per_layer, fallbacks = {}, []
    if base in ("int4b", "pal4g"):
        per_layer, fallbacks = _layer_configs(cto, mlmodel, base, keep_float)
    config = cto.OptimizationConfig(global_config=_global_config(cto, base),
                                    op_name_configs={**per_layer, **{name: None for name in keep_float}})
    if base in ("int8w", "int4b"):
        compressed = cto.linear_quantize_weights(mlmodel, config)
    else:
        compressed = cto.palettize_weights(mlmodel, config)
    fallbacks += _left_uncompressed(mlmodel, compressed, keep_float)
    if fallbacks:
        compressed.user_defined_metadata[FALLBACKS_KEY] = json.dumps(fallbacks)
    return compressed


def _global_config(cto, base: str):
    if base == "int8w":
        return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    if base == "int4b":
        return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                           block_size=INT4_BLOCK)
    if base == "pal4g":
        return cto.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_grouped_channel", group_size=PAL_GROUP)
    return cto.OpPalettizerConfig(mode="kmeans", nbits=int(base[3:]))


def int4_block(channels: int) -> int:
    """32, else the largest divisor of the input channels below it, if at least 8, else the whole input (per channel)."""
    largest = max(k for k in range(1, INT4_BLOCK + 1) if channels % k == 0)
    return largest if largest >= MIN_INT4_BLOCK else channels


def palette_group(channels: int) -> int:
    """16, else the largest group that divides the output channels (1: a palette per channel)."""
    return max(k for k in range(1, PAL_GROUP + 1) if channels % k == 0)


def _layer_configs(cto, mlmodel, base: str, keep_float) -> tuple[dict, list[dict]]:
    """A config for each weight whose channels the standard block or group does not divide."""
    from coremltools.optimize._utils import select_input_output_channel_axis

    configs, fallbacks = {}, []
    for op, w in _weights(mlmodel):
        if op.name in keep_float:
            continue
        in_axis, out_axis = select_input_output_channel_axis(op)
        axis = in_axis if base == "int4b" else out_axis
        if axis is None or axis >= w.ndim:
            continue  # coremltools skips it too; _left_uncompressed records it
        channels = int(w.shape[axis])
        if base == "int4b" and channels % INT4_BLOCK:
            size = int4_block(channels)
            configs[op.name] = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4",
                                                           granularity="per_block", block_size=size)
            fallbacks.append({"weight": op.name, "shape": list(w.shape), "block_size": size,
                              "reason": f"{channels} input channels are not a multiple of {INT4_BLOCK}"})
        elif base == "pal4g" and channels % PAL_GROUP:
            size = palette_group(channels)
            configs[op.name] = cto.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_grouped_channel",
                                                      group_size=size)
            fallbacks.append({"weight": op.name, "shape": list(w.shape), "group_size": size,
                              "reason": f"{channels} output channels are not a multiple of {PAL_GROUP}"})
    return configs, fallbacks


def _weights(mlmodel):
    """(const op, value) of every float weight large enough for coremltools to compress."""
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type != "const":
            continue
        w = op.val.val
        if isinstance(w, np.ndarray) and w.dtype.kind == "f" and w.size > WEIGHT_THRESHOLD:
            yield op, w


def _left_uncompressed(original, compressed, keep_float) -> list[dict]:
    """Weights coremltools should have compressed and did not (it could not pick their channel axes)."""
    done = {re.sub(r"_(palettized|quantized)$", "", op.name)
            for op in compressed._mil_program.functions["main"].operations if op.op_type.startswith("constexpr_")}
    return [{"weight": op.name, "shape": list(w.shape), "uncompressed": True,
             "reason": "coremltools left it uncompressed (it could not tell the weight's channel axes)"}
            for op, w in _weights(original) if op.name not in done and op.name not in keep_float]


def recorded_fallbacks(mlmodel) -> list[dict]:
    text = mlmodel.user_defined_metadata[FALLBACKS_KEY] if FALLBACKS_KEY in mlmodel.user_defined_metadata else ""
    return json.loads(text) if text else []
