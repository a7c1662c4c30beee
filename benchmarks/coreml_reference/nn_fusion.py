"""A NeuralNetwork conv pads its input and finishes its output itself, block by block.

coremltools' NeuralNetwork converter lowers an activation the spec lacks to a chain of layers:
Keras' ReLU6 becomes four, -max(-relu(x), -6) (ReLU, linear -x, unary threshold max(., -6),
linear -x), each one more pass over a feature map and one more fresh array; in gpu/ane precision
each output is rounded to fp16 in one more pass. Here a conv whose only reader starts such a chain
runs it in the `post` hook of kernels.conv2d / depthwise.depthwise, on each block of outputs right
after they are made, as the ML Program evaluator does with relu, relu6 and clip
(mil.py _fuse_activations), and a zero padding layer before a 'valid' conv becomes its padding.
On MobileNetV2 224 at batch 32 that ran 1.8 times as many images per second in float32 and 3.8
times in gpu/ane precision (one process, the two programs interleaved, 2 shared cores).

The bits are the separate layers': each layer makes the numpy calls nn.py makes, in the same order,
and in gpu/ane precision the conv's output and each layer's output are rounded to fp16 as nn_program.py
stores them. The two exceptions are checked on every float32 input: ReLU6's four layers as one
clip (_relu6) and numpy's maximum against an array instead of a scalar (_at_least). Only layers
of IEEE multiplies, adds and comparisons join a chain (no exp or tanh: a vectorised libm loop need
not give the same bits on a block as on a whole array), and only while no other layer reads an
intermediate output and it is not a model output.
"""

from __future__ import annotations

import numpy as np

from .mil import round16
from .nn import LAYERS, _border

_F32 = np.float32
PIECE = 1 << 17  # elements a chain finishes at a time: 512 KiB of float32, in L2
_THRESHOLD = 7  # UnaryFunctionLayerParams.Operation.THRESHOLD: max(scale * x + shift, alpha)


def _at_least(bound):
    """In place, x = np.maximum(x, bound) for a float32 scalar bound, on a piece of at most PIECE.

    numpy's maximum of an array and a scalar runs a loop 3 times slower than of two arrays (0.44
    against 0.15 ms on a 96x112x112 map), so a bound of 0 or -6 is an array: the two give the same
    bits for every one of the 2^32 float32 inputs (NaNs, -0.0, infinities included) against those
    two bounds, the ones ReLU and ReLU6's threshold use. Other bounds keep the scalar."""
    if _bits(bound) not in (_bits(0), _bits(-6)):
        return lambda x: np.maximum(x, bound, out=x)
    full = np.full(PIECE, bound, _F32)
    return lambda x: np.maximum(x, full[:x.size], out=x)


def _in_place_activation(p):
    """The in-place form of nn._activation for the kinds it computes with plain arithmetic, or None."""
    kind = p.WhichOneof("NonlinearityType")
    a = getattr(p, kind)
    if kind == "ReLU":
        return _at_least(_F32(0))
    if kind == "linear":  # alpha * x + beta
        return lambda x: np.add(np.multiply(x, _F32(a.alpha), out=x), _F32(a.beta), out=x)
    return None


def _in_place_unary(p):
    if p.type != _THRESHOLD:
        return None
    scale, shift, at_least = _F32(p.scale or 1.0), _F32(p.shift), _at_least(_F32(p.alpha))
    # nn._unary computes scale * x + shift first, even for 1 and 0 (-0.0 + 0.0 is +0.0)
    return lambda x: at_least(np.add(np.multiply(x, scale, out=x), shift, out=x))


# Activations made of multiplies, adds and comparisons (nn._activation); PReLU reads its
# channel from the array's shape, which a block of depthwise planes does not keep.
_ARITHMETIC_ACTIVATIONS = {"ReLU", "leakyReLU", "linear", "thresholdedReLU", "sigmoidHard"}
_ARITHMETIC_UNARY = {6, _THRESHOLD}  # ABS, THRESHOLD


def _chain_link(kind, params):
    """How a layer of a chain finishes a block in place (a function of the block), or None if
    it cannot join one."""
    if kind == "activation" and params.WhichOneof("NonlinearityType") in _ARITHMETIC_ACTIVATIONS:
        fast = _in_place_activation(params)
    elif kind == "unary" and params.type in _ARITHMETIC_UNARY:
        fast = _in_place_unary(params)
    elif kind == "clip":
        return lambda x: np.clip(x, _F32(params.minVal), _F32(params.maxVal), out=x)
    else:
        return None
    if fast is not None:
        return fast
    kernel = LAYERS[kind][1]

    def copy_back(x):
        x[...] = kernel(params, x)
    return copy_back


def conv_chains(layers, outputs, precision: str):
    """{conv layer index: (the input it now reads, the output it now makes, nn._conv's keyword
    arguments: post, pads)} and the indexes of the layers the convs took over. Every forward conv
    gets a post in gpu/ane precision (its fp16 rounding, in cache); in float32 only a conv
    followed by a chain does.

    layers are (kind, layer) pairs in order; outputs the names a caller reads after a run."""
    readers, made_by = {}, {layer.output[0]: index for index, (_, layer) in enumerate(layers)}
    for index, (_, layer) in enumerate(layers):
        for name in layer.input:
            readers.setdefault(name, []).append(index)
    fused, taken = {}, set()
    for index, (kind, layer) in enumerate(layers):
        if kind != "convolution" or layer.convolution.isDeconvolution:
            continue
        source, extra = layer.input[0], {}
        pad = made_by.get(source)
        if pad is not None and readers[source] == [index] and source not in outputs \
                and _zero_pad_then_valid(layers[pad][1], layer.convolution):
            (top, bottom), (left, right) = _border(layers[pad][1].padding.paddingAmounts)
            source, extra["pads"] = layers[pad][1].input[0], [(top, bottom), (left, right)]
            taken.add(pad)
        output, chain = layer.output[0], []  # chain: the (kind, params) the conv takes over
        while output not in outputs and len(readers.get(output, ())) == 1:
            nxt = readers[output][0]
            next_kind, next_layer = layers[nxt]
            params = getattr(next_layer, next_kind)
            if len(next_layer.input) != 1 or _chain_link(next_kind, params) is None:
                break
            chain.append((next_kind, params))
            taken.add(nxt)
            output = next_layer.output[0]
        links = _links(chain, precision)
        if links:
            extra["post"] = _run_all(links)
        if extra:
            fused[index] = (source, output, extra)
    return fused, taken


def _zero_pad_then_valid(pad_layer, conv) -> bool:
    """A padding layer of H and W with +0.0 before a conv with 'valid' padding of its own 0: the
    converter makes Keras' ZeroPadding2D (MobileNetV2's stride-2 convs) a layer; the conv pads the
    same zeros itself without copying the feature map (mil.py _fold_zero_pads does it for ML Programs)."""
    if pad_layer.WhichOneof("layer") != "padding" or len(pad_layer.input) != 1:
        return False
    p = pad_layer.padding
    return (p.WhichOneof("PaddingType") == "constant" and _bits(p.constant.value) == _bits(0)
            and conv.WhichOneof("ConvolutionPaddingType") == "valid"
            and not any(a for e in conv.valid.paddingAmounts.borderAmounts for a in (e.startEdgeSize, e.endEdgeSize)))


def _links(chain, precision: str):
    """The in-place steps of a chain, each layer followed by its fp16 rounding in gpu/ane precision
    (the conv's output first), a ReLU6 lowering as one step."""
    rounded = precision == "gpu/ane"
    links, i = [round16] if rounded else [], 0
    while i < len(chain):
        if _is_relu6(chain[i:i + 4]):
            links.append(_relu6)  # its values are fp16 values when its input's are: no rounding
            i += 4
            continue
        links += [_chain_link(*chain[i]), round16] if rounded else [_chain_link(*chain[i])]
        i += 1
    return links


def _bits(value) -> bytes:
    return _F32(value).tobytes()  # (-0.0 == 0.0, and x + -0.0 keeps a -0.0 that x + 0.0 does not)


def _is_relu6(window) -> bool:
    """ReLU, linear(-1, 0), threshold(scale 1, shift 0, at least -6), linear(-1, 0): ReLU6 as the
    converter lowers it, -max(-relu(x), -6)."""
    if [kind for kind, _ in window] != ["activation", "activation", "unary", "activation"]:
        return False
    relu, neg, threshold, neg_again = (p for _, p in window)
    negations = [p.WhichOneof("NonlinearityType") == "linear" and _bits(p.linear.alpha) == _bits(-1)
                 and _bits(p.linear.beta) == _bits(0) for p in (neg, neg_again)]
    return (relu.WhichOneof("NonlinearityType") == "ReLU" and all(negations) and threshold.type == _THRESHOLD
            and _bits(threshold.scale or 1.0) == _bits(1) and _bits(threshold.shift) == _bits(0)
            and _bits(threshold.alpha) == _bits(-6))


def _relu6(x):
    """The four layers of _is_relu6 in two numpy passes, the same bits: np.clip(x, 0, 6) + 0.0 (the
    + 0.0 makes a -0.0 +0.0, as the chain's linear layers do). Checked for every one of the 2^32
    float32 inputs against nn.py's four kernels, in float32 and with each output rounded to fp16
    after an fp16 input (NaN payloads, -0.0, infinities and fp16 overflow included)."""
    np.add(np.clip(x, _F32(0), _F32(6), out=x), _F32(0), out=x)


def _run_all(links):
    """post(block): every link on each piece of the block in turn (a 1x1 conv's block is a whole
    sample, megabytes: a piece stays in L2 from one link to the next, and _at_least's bound
    array has a fixed size)."""
    def post(x):
        flat = x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1)
        for i in range(0, flat.size, PIECE):
            piece = flat[i:i + PIECE]
            for link in links:
                link(piece)
        if not np.shares_memory(flat, x):  # (the kernels' blocks are contiguous: not seen there)
            x[...] = flat.reshape(x.shape)
    return post
