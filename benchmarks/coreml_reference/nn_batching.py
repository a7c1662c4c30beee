"""Run a whole batch through a NeuralNetwork (.mlmodel) that declares batch 1, when that is safe.

The rule is batching.py's: the batch rides on axis 0, and a model is batched only if every layer
is one this module knows keeps the samples of axis 0 apart, with its axes, ranks and constants
checked; anything else keeps the whole model per sample, and the reason names the layer.

Where the batch lives. A NeuralNetwork states it in its input shape mappings:
EXACT_ARRAY_MAPPING and RANK4_IMAGE_MAPPING (what coremltools' converter writes) feed arrays at
their declared rank and images as (B, C, H, W), so the batch is axis 0 of every input. The legacy
RANK5 mappings feed (Seq, Batch, C, H, W), where it is axis 1; those models run per sample.
The spec declares no rank for an intermediate tensor (coremltools leaves each layer's
outputTensor empty), so the plan derives every rank from the inputs' and constants' shapes with
each layer's rule; a layer without a rule here stops the plan. Channel-wise layers (convolution,
pooling, batchnorm, upsample, PReLU, legacy softmax and concat) take axis -3 as C and fold every
axis before it into one, so they need rank 4 or more to leave axis 0 alone.

The numbers are the per-sample ones, bit for bit, in both precisions: the kernels are the
batch-agnostic ones batching.py relies on, the gpu/ane fp16 rounding of each layer's output is
elementwise, and a 2-D matmul whose rows are the samples (a dense layer after global pooling)
runs a row at a time, as batching.py does for ML Program matmuls.
"""

from __future__ import annotations


from .batching import one_row_at_a_time
from .nn import LAYERS

# Layers that compute each element (or each sample's slice) on its own, at any rank.
_ELEMENTWISE = {"activation", "unary", "gelu", "clip"}
# Layers that read axis -3 as channels and fold the axes before it (nn.py's _as4d and (-1, 1, 1) shapes).
_CHANNELWISE = {"convolution", "pooling", "batchnorm", "upsample", "resizeBilinear", "softmax", "concat"}
_BROADCAST = {"add", "multiply", "addBroadcastable", "subtractBroadcastable", "multiplyBroadcastable",
              "divideBroadcastable", "maxBroadcastable", "minBroadcastable"}
_REDUCE = {"reduceMean", "reduceMax", "reduceMin", "reduceSum"}

EXACT_ARRAY_MAPPING, RANK4_IMAGE_MAPPING = 1, 1  # NeuralNetwork.proto's enum values


class _Refused(Exception):
    """A layer that may mix samples or move the batch off axis 0 (the message says how)."""


def nn_batch_plan(nn, inputs):
    """Why the NeuralNetwork `nn` cannot run a batch in one pass (a string), or the kernels to
    swap in (a list of (layer index, kernel(params, x or xs))), each the same computation at batch 1.

    inputs are the model description's input features.
    """
    try:
        ranks = _input_ranks(nn, inputs)
    except _Refused as why:
        return str(why)
    shapes = {}  # constants: loadConstantND outputs, which carry no batch
    plan = []
    for index, layer in enumerate(nn.layers):
        kind = layer.WhichOneof("layer")
        params = getattr(layer, kind)
        if kind == "loadConstantND":
            shapes[layer.output[0]] = [int(s) for s in params.shape]
            continue
        try:
            if any(name not in ranks and name not in shapes for name in layer.input) or not layer.input:
                raise _Refused("reads a tensor whose rank the plan does not know")
            rank, kernel = _layer_rule(kind, params, layer, ranks, shapes)
        except _Refused as why:
            return f"{kind} layer {layer.name!r}: {why}"
        ranks[layer.output[0]] = rank
        if kernel is not None:
            plan.append((index, kernel))
    return plan


def _input_ranks(nn, inputs) -> dict[str, int]:
    ranks = {}
    for feature in inputs:
        kind = feature.type.WhichOneof("Type")
        if kind == "imageType":
            if nn.imageInputShapeMapping != RANK4_IMAGE_MAPPING:
                raise _Refused(f"input {feature.name}: rank-5 image mapping (Seq, Batch, C, H, W) puts the batch on axis 1")
            ranks[feature.name] = 4
        elif kind == "multiArrayType":
            shape = [int(s) for s in feature.type.multiArrayType.shape]
            if nn.arrayInputShapeMapping != EXACT_ARRAY_MAPPING:
                raise _Refused(f"input {feature.name}: rank-5 array mapping (Seq, Batch, C, H, W) puts the batch on axis 1")
            if shape[:1] != [1]:
                raise _Refused(f"input {feature.name} does not declare batch 1 (shape {shape})")
            ranks[feature.name] = len(shape)
        else:
            raise _Refused(f"input {feature.name} is a {kind}, not an array or an image")
    return ranks


def _layer_rule(kind, p, layer, ranks, shapes):
    """(the output's rank, a kernel to swap in or None), or _Refused."""
    varying = [ranks[name] for name in layer.input if name in ranks]
    if not varying:
        raise _Refused("computes from constants only")
    rank = varying[0]
    if kind in _BROADCAST:
        return _broadcast_rank(layer, ranks, shapes), None
    if len(layer.input) != 1 and kind not in ("concat", "concatND", "batchedMatmul"):
        raise _Refused("takes a second tensor (e.g. a weight computed at run time)")
    if kind in _ELEMENTWISE and not (kind == "activation" and p.WhichOneof("NonlinearityType") == "PReLU"):
        return rank, None
    if kind in _CHANNELWISE or kind == "activation":  # (PReLU's slopes are per channel)
        if len(varying) != len(layer.input) or len(set(varying)) != 1:
            raise _Refused("joins a constant or tensors of other ranks")
        if rank < 4:
            raise _Refused(f"reads axis -3 as channels, and in a rank-{rank} tensor that reaches axis 0")
        return rank, None
    rule = _SHAPE_RULES.get(kind)
    if rule is None:
        raise _Refused("not known to keep samples apart")
    return rule(p, layer, rank, ranks, shapes)


def _broadcast_rank(layer, ranks, shapes) -> int:
    """Broadcasting keeps the batch on axis 0 only if every varying operand has the output's rank
    and a constant of that rank has 1 on axis 0 (x (1, 4) plus a constant (3, 1, 4) is (3, 1, 4)
    per sample, and batched it would not be)."""
    out = max([ranks.get(name, 0) for name in layer.input] + [len(shapes.get(name, [])) for name in layer.input])
    for name in layer.input:
        if name in ranks and ranks[name] != out:
            raise _Refused("broadcasting may move axis 0")
        if name in shapes and len(shapes[name]) == out and shapes[name][0] != 1:
            raise _Refused(f"a constant of shape {shapes[name]} spans axis 0")
    return out


def _axis(value: int, rank: int) -> int:
    return int(value) + rank if int(value) < 0 else int(value)


def _not_axis_0(axes, rank: int, what: str = "works across axis 0") -> None:
    if any(_axis(a, rank) == 0 for a in axes):
        raise _Refused(what)


def _softmax_nd(p, layer, rank, ranks, shapes):
    _not_axis_0([p.axis], rank)
    return rank, None


def _concat_nd(p, layer, rank, ranks, shapes):
    if any(name not in ranks or ranks[name] != rank for name in layer.input):
        raise _Refused("joins a constant or tensors of other ranks")
    _not_axis_0([p.axis], rank, "joins along axis 0")
    return rank, None


def _transpose(p, layer, rank, ranks, shapes):
    if len(p.axes) != rank or int(p.axes[0]) != 0:
        raise _Refused("moves axis 0")
    return rank, None


def _reshape(p, layer, rank, ranks, shapes):
    """A target with a leading 1 takes the batch there (-1: at batch 1 the same shape)."""
    dims = [int(v) for v in p.targetShape]
    if not dims or dims[0] != 1 or any(d <= 0 for d in dims[1:]):
        raise _Refused(f"target shape {dims}: cannot tell where the batch goes")
    batched = [-1, *dims[1:]]
    return len(dims), lambda params, x: x.reshape(batched)


def _flatten(p, layer, rank, ranks, shapes):
    if _axis(p.axis, rank) != 1:
        raise _Refused("merges axis 0 with another")
    return 2, None


def _expand_dims(p, layer, rank, ranks, shapes):
    out = rank + len(p.axes)
    _not_axis_0(p.axes, out, "may insert before axis 0")
    return out, None


def _squeeze(p, layer, rank, ranks, shapes):
    if p.squeezeAll:
        raise _Refused("squeezes every axis of size 1, the batch's at batch 1")
    _not_axis_0(p.axes, rank, "squeezes axis 0")
    return rank - len(p.axes), None


def _tile(p, layer, rank, ranks, shapes):
    if len(p.reps) != rank or int(p.reps[0]) != 1:
        raise _Refused("repeats along axis 0")
    return rank, None


def _slice(p, layer, rank, ranks, shapes):
    """Axis 0 must be taken whole: both masks set, stride 1, not squeezed."""
    whole = len(p.beginMasks) == rank and p.beginMasks[0] and len(p.endMasks) == rank and p.endMasks[0]
    if not whole or (p.strides and int(p.strides[0]) != 1) or (p.squeezeMasks and p.squeezeMasks[0]):
        raise _Refused("does not take axis 0 whole")
    return rank - sum(bool(s) for s in p.squeezeMasks), None


def _constant_pad(p, layer, rank, ranks, shapes):
    if len(p.padAmounts) != 2 * rank or any(p.padAmounts[:2]):
        raise _Refused("pads axis 0")
    return rank, None


def _padding(p, layer, rank, ranks, shapes):
    if rank < 3:  # pads the last two axes
        raise _Refused(f"pads the last two axes of a rank-{rank} tensor: it would reach axis 0")
    return rank, None


def _reduce(p, layer, rank, ranks, shapes):
    if p.reduceAll:
        raise _Refused("reduces every axis, axis 0 too")
    _not_axis_0(p.axes, rank)
    return (rank if p.keepDims else rank - len(p.axes)), None


def _layer_norm(p, layer, rank, ranks, shapes):
    if len(p.normalizedShape) >= rank:
        raise _Refused("normalises over axis 0")
    return rank, None


def _inner_product(p, layer, rank, ranks, shapes):
    if rank < 2:
        raise _Refused("axis 0 is not the batch")
    return rank, (_rows_apart(_kernel("innerProduct"), many=False) if rank == 2 else None)


def _batched_matmul(p, layer, rank, ranks, shapes):
    """x carries the batch on axis 0; the other operand must be a weight or a constant without it."""
    if layer.input[0] not in ranks or rank < 2 or (rank == 2 and p.transposeA):
        raise _Refused("axis 0 is not the batch")
    if len(layer.input) == 2:
        other = shapes.get(layer.input[1])
        if other is None:
            raise _Refused("both operands vary with the input")
        if len(other) > rank or (len(other) == rank and other[0] != 1):
            raise _Refused(f"a constant of shape {other} spans axis 0")
    elif len(layer.input) != 1:
        raise _Refused("takes more than two operands")
    return rank, (_rows_apart(_kernel("batchedMatmul"), many=True) if rank == 2 else None)


def _kernel(kind):
    return LAYERS[kind][1]


def _rows_apart(kernel, many: bool):
    """The kernel run on one sample's row at a time: BLAS sums N rows in another order than 1."""
    if many:
        return lambda p, xs: one_row_at_a_time(xs[0], lambda row: kernel(p, [row, *xs[1:]]))
    return lambda p, x: one_row_at_a_time(x, lambda row: kernel(p, row))


_SHAPE_RULES = {
    "softmaxND": _softmax_nd, "concatND": _concat_nd, "transpose": _transpose, "reshapeStatic": _reshape,
    "flattenTo2D": _flatten, "expandDims": _expand_dims, "squeeze": _squeeze, "tile": _tile,
    "sliceStatic": _slice, "constantPad": _constant_pad, "padding": _padding, "layerNormalization": _layer_norm,
    "innerProduct": _inner_product, "batchedMatmul": _batched_matmul, **{kind: _reduce for kind in _REDUCE},
}
