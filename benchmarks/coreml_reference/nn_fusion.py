"""A NeuralNetwork conv finishes its output block by block, with the activation layers after it.

coremltools' NeuralNetwork converter lowers an activation the spec lacks to a chain of layers:
Keras' ReLU6 becomes four (ReLU, linear -x + 6, unary threshold max(., 0), linear -x + 6), each
one more pass over a feature map that left the cache long ago and one more fresh array. Here a
conv whose only reader starts such a chain runs the chain in the `post` hook of kernels.conv2d /
depthwise.depthwise, on each block of outputs right after they are made, as the ML Program
evaluator does with relu, relu6 and clip (mil.py _fuse_activations).

The bits are the separate layers': each layer of the chain makes the same numpy calls in the same
order (6 - max(6 - relu(x), 0) stays that, not a clip(x, 0, 6)), and in gpu/ane precision the
conv's output and every layer's output are rounded to fp16 as nn.py rounds each stored output.
Only layers whose arithmetic is IEEE multiplies, adds and comparisons join a chain (no exp or
tanh: a vectorised libm loop need not give the same bits on a block as on a whole array), and
only while no other layer reads an intermediate output and it is not a model output.
"""

from __future__ import annotations

import numpy as np

from .mil import round16

_F32 = np.float32
_THRESHOLD = 7  # UnaryFunctionLayerParams.Operation.THRESHOLD: max(scale * x + shift, alpha)


def _in_place_activation(p):
    """The in-place form of nn._activation for the kinds it computes with plain arithmetic, or None."""
    kind = p.WhichOneof("NonlinearityType")
    a = getattr(p, kind)
    if kind == "ReLU":
        return lambda x: np.maximum(x, _F32(0), out=x)
    if kind == "linear":  # alpha * x + beta
        return lambda x: np.add(np.multiply(x, _F32(a.alpha), out=x), _F32(a.beta), out=x)
    return None


def _in_place_unary(p):
    if p.type != _THRESHOLD:
        return None
    scale, shift, alpha = _F32(p.scale or 1.0), _F32(p.shift), _F32(p.alpha)
    # nn._unary computes scale * x + shift first, even for 1 and 0 (-0.0 + 0.0 is +0.0)
    return lambda x: np.maximum(np.add(np.multiply(x, scale, out=x), shift, out=x), alpha, out=x)


# Activations made of multiplies, adds and comparisons (nn._activation); PReLU reads its
# channel from the array's shape, which a block of depthwise planes does not keep.
_ARITHMETIC_ACTIVATIONS = {"ReLU", "leakyReLU", "linear", "thresholdedReLU", "sigmoidHard"}
_ARITHMETIC_UNARY = {6, _THRESHOLD}  # ABS, THRESHOLD


def _chain_link(kind, params):
    """How a layer of a chain finishes a block in place (a function of the block), or None if
    it cannot join one."""
    from .nn import LAYERS

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


def conv_chains(layers, outputs, half: bool):
    """{conv layer index: (the output it now makes, its post)} and the indexes of the layers the
    convs took over. Every forward conv gets a post in gpu/ane precision (its fp16 rounding, in
    cache); in float32 only a conv followed by a chain does.

    layers are (kind, layer) pairs in order; outputs the names a caller reads after a run."""
    readers = {}
    for index, (_, layer) in enumerate(layers):
        for name in layer.input:
            readers.setdefault(name, []).append(index)
    fused, taken = {}, set()
    for index, (kind, layer) in enumerate(layers):
        if kind != "convolution" or layer.convolution.isDeconvolution:
            continue
        output, links = layer.output[0], [round16] if half else []
        while output not in outputs and len(readers.get(output, ())) == 1:
            nxt = readers[output][0]
            next_kind, next_layer = layers[nxt]
            link = _chain_link(next_kind, getattr(next_layer, next_kind)) if len(next_layer.input) == 1 else None
            if link is None:
                break
            links += [link, round16] if half else [link]
            taken.add(nxt)
            output = next_layer.output[0]
        if links:
            fused[index] = (output, _run_all(links))
    return fused, taken


def _run_all(links):
    def post(x):
        for link in links:
            link(x)
    return post
