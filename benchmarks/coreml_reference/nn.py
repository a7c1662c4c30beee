"""The NeuralNetwork layers (the .mlmodel format) in numpy: LAYERS, each layer kind's kernel.

Tensors keep the rank the converter gave them; channel-wise layers
(convolution, pooling, batchnorm, PReLU, upsample) use axis -3 as C, as the
NeuralNetwork spec defines. nn_program.py runs a model's layers in order, and says
how its precision ("cpu" or "gpu/ane") rounds them.
"""

from __future__ import annotations

import numpy as np

from . import kernels as K
from .errors import UnsupportedOpError


def weights(w, shape=None) -> np.ndarray:
    if len(w.floatValue):
        arr = np.asarray(w.floatValue, np.float32)
    elif len(w.float16Value):
        arr = np.frombuffer(w.float16Value, np.float16).astype(np.float32)
    elif len(w.rawValue):
        arr = np.frombuffer(w.rawValue, np.float32).copy()
    elif w.HasField("quantization"):
        raise UnsupportedOpError("quantized NeuralNetwork weights (int8 / lookup table) are not implemented")
    else:
        arr = np.zeros(0, np.float32)
    return arr.reshape(shape) if shape is not None else arr


def _as4d(x):
    """View the last three axes as (C, H, W) with one leading batch axis."""
    return x.reshape((-1,) + x.shape[-3:]), x.shape[:-3]


def _from4d(y, lead):
    return y.reshape(tuple(lead) + y.shape[1:])


def _conv(p, x, post=None, pads=None):  # pads: a padding layer's, folded into the conv (nn_fusion.py)
    x4, lead = _as4d(x)
    kh, kw = p.kernelSize or (3, 3)
    strides = list(p.stride) or [1, 1]
    dil = list(p.dilationFactor) or [1, 1]
    groups = p.nGroups or 1
    if p.isDeconvolution:
        w = weights(p.weights, (p.kernelChannels, p.outputChannels // groups, kh, kw))
        out_hw = list(p.outputShape) or None
        if p.WhichOneof("ConvolutionPaddingType") == "same":
            want = out_hw or [s * st for s, st in zip(x4.shape[2:], strides)]
            full = [(i - 1) * st + (k - 1) * d + 1 for i, st, k, d in zip(x4.shape[2:], strides, (kh, kw), dil)]
            pads = [((f - wv) // 2, f - wv - (f - wv) // 2) for f, wv in zip(full, want)]
        else:
            pads = _border(p.valid.paddingAmounts)
        b = weights(p.bias) if p.hasBias else None
        return _from4d(K.conv_transpose2d(x4, w, b, K.ConvGeometry(strides, pads, dil, groups), out_hw), lead)
    w = weights(p.weights, (p.outputChannels, p.kernelChannels, kh, kw))
    if pads is None and p.WhichOneof("ConvolutionPaddingType") == "same":
        pads = [K.same_pads(s, k, st, d) for s, k, st, d in zip(x4.shape[2:], (kh, kw), strides, dil)]
        if p.same.asymmetryMode == 1:  # TOP_LEFT_HEAVY
            pads = [(b, a) for a, b in pads]
    elif pads is None:
        pads = _border(p.valid.paddingAmounts)
    b = weights(p.bias) if p.hasBias else None
    return _from4d(K.conv2d(x4, w, b, K.ConvGeometry(strides, pads, dil, groups), post), lead)


def _border(amounts):
    edges = list(amounts.borderAmounts)
    return [(e.startEdgeSize, e.endEdgeSize) for e in edges] if edges else [(0, 0), (0, 0)]


def _pool(p, x):
    x4, lead = _as4d(x)
    kind = {0: "max", 1: "avg"}.get(p.type)
    if kind is None:
        raise UnsupportedOpError("L2 pooling is not implemented")
    if p.globalPooling:
        y = x4.max(axis=(2, 3), keepdims=True) if kind == "max" else x4.mean(axis=(2, 3), keepdims=True)
        return _from4d(y, lead)
    kernel, strides = list(p.kernelSize), list(p.stride)
    which = p.WhichOneof("PoolingPaddingType")
    if which == "same":
        pads = [K.same_pads(s, k, st) for s, k, st in zip(x4.shape[2:], kernel, strides)]
    elif which == "valid":
        pads = _border(p.valid.paddingAmounts)
    else:
        raise UnsupportedOpError("pooling with includeLastPixel padding is not implemented")
    return _from4d(K.pool2d(x4, kind, kernel, K.ConvGeometry(strides, pads), p.avgPoolExcludePadding), lead)


def _activation(p, x):
    kind = p.WhichOneof("NonlinearityType")
    a = getattr(p, kind)
    f32 = np.float32
    if kind == "ReLU":
        return np.maximum(x, f32(0))
    if kind == "leakyReLU":
        return np.where(x >= 0, x, f32(a.alpha) * x)
    if kind == "PReLU":
        alpha = weights(a.alpha).reshape((-1, 1, 1))
        return np.where(x >= 0, x, x * alpha)
    if kind == "ELU":
        return np.where(x > 0, x, f32(a.alpha) * (np.exp(np.minimum(x, 0)) - 1))
    if kind == "sigmoid":
        return f32(1) / (f32(1) + np.exp(-x))
    if kind == "sigmoidHard":
        return np.clip(f32(a.alpha) * x + f32(a.beta), f32(0), f32(1))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "linear":
        return f32(a.alpha) * x + f32(a.beta)
    if kind == "softplus":
        return np.logaddexp(f32(0), x)
    if kind == "softsign":
        return x / (f32(1) + np.abs(x))
    if kind == "scaledTanh":
        return f32(a.alpha) * np.tanh(f32(a.beta) * x)
    if kind == "thresholdedReLU":
        return np.where(x > a.alpha, x, f32(0))
    raise UnsupportedOpError(f"NeuralNetwork activation {kind} is not implemented")


def _unary(p, x):
    y = np.float32(p.scale or 1.0) * x + np.float32(p.shift)
    eps = np.float32(p.epsilon)
    t = p.type
    return {0: lambda: np.sqrt(y), 1: lambda: 1 / np.sqrt(y + eps), 2: lambda: 1 / (y + eps),
            3: lambda: np.power(y, np.float32(p.alpha)), 4: lambda: np.exp(y), 5: lambda: np.log(y + eps),
            6: lambda: np.abs(y), 7: lambda: np.maximum(y, np.float32(p.alpha))}[t]()


def _slice(p, x):
    idx = []
    for i in range(x.ndim):
        if p.squeezeMasks and p.squeezeMasks[i]:
            idx.append(p.beginIds[i])
            continue
        b = None if p.beginMasks[i] else p.beginIds[i]
        e = None if p.endMasks[i] else p.endIds[i]
        idx.append(slice(b, e, p.strides[i] if p.strides else 1))
    return x[tuple(idx)]


def _pad(p, x):
    a = list(p.padAmounts)
    if p.padToGivenOutputSizeMode:
        raise UnsupportedOpError("constantPad to a given output size is not implemented")
    return np.pad(x, [(a[2 * i], a[2 * i + 1]) for i in range(x.ndim)], constant_values=p.value)


def _padding(p, x):
    """The rank-4 padding layer: H and W only (ZeroPadding2D, 'same' pads the converter made explicit)."""
    kind = p.WhichOneof("PaddingType")
    (t, b), (left, r) = _border(p.paddingAmounts)
    pairs = [(0, 0)] * (x.ndim - 2) + [(t, b), (left, r)]
    if kind == "constant":
        return K.pad_constant(x, pairs, float(p.constant.value))
    return np.pad(x, pairs, mode="reflect" if kind == "reflection" else "edge")


def _upsample(p, x):
    x4, lead = _as4d(x)
    if len(p.fractionalScalingFactor):
        sh, sw = p.fractionalScalingFactor
    else:
        sh, sw = (list(p.scalingFactor) or [1, 1])
    oh, ow = int(np.floor(x4.shape[2] * sh)), int(np.floor(x4.shape[3] * sw))
    if p.mode == 0:
        return _from4d(K.resize_nearest(x4, oh, ow), lead)
    mode = {0: "asymmetric", 1: "align_corners", 2: "half_pixel"}[p.linearUpsampleMode]
    return _from4d(K.resize_bilinear(x4, oh, ow, mode), lead)


def _inner_product(p, x):
    w = weights(p.weights, (p.outputChannels, p.inputChannels))
    y = x @ w.T
    return y + weights(p.bias) if p.hasBias else y


def _batched_matmul(p, xs):
    a = xs[0]
    if p.transposeA:
        a = np.swapaxes(a, -1, -2)
    if len(xs) == 2:
        b = np.swapaxes(xs[1], -1, -2) if p.transposeB else xs[1]
        return np.matmul(a, b)
    # Stored output-major, like innerProduct: (second, first), used as its transpose.
    w = weights(p.weights, (p.weightMatrixSecondDimension, p.weightMatrixFirstDimension)).T
    y = np.matmul(a, w)
    return y + weights(p.bias) if p.hasBias else y


def _batchnorm(p, x):
    shape = (-1, 1, 1)
    y = (x - weights(p.mean).reshape(shape)) / np.sqrt(weights(p.variance).reshape(shape) + np.float32(p.epsilon))
    return y * weights(p.gamma).reshape(shape) + weights(p.beta).reshape(shape)


def _layer_norm(p, x):
    axes = tuple(range(x.ndim - len(p.normalizedShape), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = tuple(p.normalizedShape)
    return (x - mean) / np.sqrt(var + np.float32(p.eps)) * weights(p.gamma, shape) + weights(p.beta, shape)


def _reduce(fn):
    def run(p, x):
        axes = None if p.reduceAll else tuple(int(a) for a in p.axes)
        return fn(x, axis=axes, keepdims=p.keepDims).astype(np.float32)
    return run


def _mil_gelu(p, x):
    from .mil_ops import _gelu

    return _gelu(x, {0: "EXACT", 1: "TANH_APPROXIMATION", 2: "SIGMOID_APPROXIMATION"}[p.mode])


def _many(fn):
    def run(p, xs):
        out = xs[0]
        for y in xs[1:]:
            out = fn(out, y)
        return out
    return run


def _sum(p, xs):
    return (_many(np.add)(p, xs) if len(xs) > 1 else xs[0] + np.float32(p.alpha))


def _product(p, xs):
    return (_many(np.multiply)(p, xs) if len(xs) > 1 else xs[0] * np.float32(p.alpha))


# layer -> (takes a list of inputs?, kernel(params, x or xs))
LAYERS = {
    "convolution": (False, _conv),
    "pooling": (False, _pool),
    "activation": (False, _activation),
    "innerProduct": (False, _inner_product),
    "batchnorm": (False, _batchnorm),
    "layerNormalization": (False, _layer_norm),
    "unary": (False, _unary),
    "add": (True, _sum),
    "multiply": (True, _product),
    "addBroadcastable": (True, _many(np.add)),
    "subtractBroadcastable": (True, _many(np.subtract)),
    "multiplyBroadcastable": (True, _many(np.multiply)),
    "divideBroadcastable": (True, _many(np.divide)),
    "maxBroadcastable": (True, _many(np.maximum)),
    "minBroadcastable": (True, _many(np.minimum)),
    "concatND": (True, lambda p, xs: np.concatenate(xs, axis=p.axis)),
    "concat": (True, lambda p, xs: np.concatenate(xs, axis=-3)),
    "transpose": (False, lambda p, x: np.transpose(x, list(p.axes))),
    "reshapeStatic": (False, lambda p, x: x.reshape([int(v) for v in p.targetShape])),
    "flattenTo2D": (False, lambda p, x: x.reshape(int(np.prod(x.shape[: p.axis])), -1)),
    "expandDims": (False, lambda p, x: np.expand_dims(x, tuple(int(a) for a in p.axes))),
    "squeeze": (False, lambda p, x: np.squeeze(x) if p.squeezeAll else np.squeeze(x, tuple(int(a) for a in p.axes))),
    "tile": (False, lambda p, x: np.tile(x, [int(r) for r in p.reps])),
    "sliceStatic": (False, _slice),
    "constantPad": (False, _pad),
    "padding": (False, _padding),
    "upsample": (False, _upsample),
    "resizeBilinear": (False, lambda p, x: _from4d(K.resize_bilinear(
        _as4d(x)[0], p.targetSize[0], p.targetSize[1],
        {0: "align_corners", 1: "align_corners", 2: "asymmetric", 3: "half_pixel"}[p.mode.samplingMethod]), _as4d(x)[1])),
    "reduceMean": (False, _reduce(np.mean)),
    "reduceMax": (False, _reduce(np.max)),
    "reduceMin": (False, _reduce(np.min)),
    "reduceSum": (False, _reduce(np.sum)),
    "softmaxND": (False, lambda p, x: K.softmax(x, p.axis)),
    "softmax": (False, lambda p, x: K.softmax(x, -3)),
    "gelu": (False, _mil_gelu),
    "clip": (False, lambda p, x: np.clip(x, np.float32(p.minVal), np.float32(p.maxVal))),
    "batchedMatmul": (True, _batched_matmul),
    "loadConstantND": (True, lambda p, xs: weights(p.data, tuple(int(s) for s in p.shape))),
}
