"""Execute a NeuralNetwork model (the .mlmodel format) in numpy, layer by layer.

Tensors keep the rank the converter gave them; channel-wise layers
(convolution, pooling, batchnorm, PReLU, upsample) use axis -3 as C, as the
NeuralNetwork spec defines.

Precision. A NeuralNetwork declares no types for its intermediate tensors: "the intermediate
tensors are automatically typed at runtime by the compute unit responsible for executing the
layer producing them ... The GPU and ANE use float 16 precision, and the CPU uses float 32"
(coremltools, docs-guides/source/typed-execution.md, "Neural Network Untyped Tensors"). The
weights follow the tensors: "the weights are dequantized at runtime to match the precision of
the intermediate tensors (float 32 or float 16 depending on execution unit)" (coremltools,
docs-guides/source/quantization-neural-network.md). So with half=True (the gpu/ane mode):
  - every WeightParams (kernels, biases, batchnorm statistics, constants) is rounded to float16;
  - the model's inputs, after the image scaler, are rounded to float16 (the first layer reads fp16);
  - each layer's output is rounded to float16 (values past 65504 become inf, as in an fp16 tensor);
  - the arithmetic inside a layer stays float32: the GPU accumulates in higher precision unless an
    app sets MLModelConfiguration.allowLowPrecisionAccumulationOnGPU (default false); the Neural
    Engine's accumulator width is not documented, and the same rule is used for it.
Scalar layer parameters (a leaky ReLU's alpha, a clip's bounds) are plain floats in the spec, not
weights, and stay float32. The ML Program gpu/ane mode rounds the same way, at each fp16-typed op.
"""

from __future__ import annotations

import numpy as np

from . import kernels as K
from .errors import UnsupportedOpError
from .nn_fusion import conv_chains
from .workspace import last_reads, release


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


def half(x: np.ndarray) -> np.ndarray:
    """x rounded to float16, held in float32; overflow gives +-inf without a warning, as fp16 stores it."""
    return K.round_fp16(np.asarray(x, np.float32))


def _round_weights(message) -> None:
    """Round every float32 WeightParams inside a layer's params to float16, in place (gpu/ane mode)."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        for sub in ([value] if hasattr(value, "DESCRIPTOR") else value):  # one message, or a repeated field
            if sub.DESCRIPTOR.name != "WeightParams":
                _round_weights(sub)
            elif len(sub.floatValue):
                sub.floatValue[:] = half(np.asarray(sub.floatValue, np.float32)).tolist()
            elif len(sub.rawValue):
                sub.rawValue = half(np.frombuffer(sub.rawValue, np.float32)).tobytes()


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


class NeuralNetworkProgram:
    """half=False: float32 throughout, as Core ML's CPU runs it; half=True: float16 tensors and
    weights, as the GPU and the Neural Engine run it (the rule is in this module's docstring).
    outputs: every name the caller reads after a run; fuse=False runs each layer on its own
    (nn_fusion.py: the same bits, slower)."""

    def __init__(self, nn, half: bool = False, outputs: tuple[str, ...] = (), fuse: bool = True):
        self.half = half
        if half:  # round a copy: the caller's spec keeps its stored weights
            nn = type(nn).FromString(nn.SerializeToString())
            for layer in nn.layers:
                _round_weights(layer)
        self.layers = [(layer.WhichOneof("layer"), layer) for layer in nn.layers]
        unknown = sorted({k for k, _ in self.layers} - set(LAYERS))
        if unknown:
            raise UnsupportedOpError(
                f"NeuralNetwork layer(s) {', '.join(unknown)} not implemented by the reference evaluator; "
                "the model cannot be checked on this machine (run the bench on a Mac, or use --coreml-format mlprogram)"
            )
        # (inputs, output, kernel, its params, takes a list?) per layer; adapt() may swap a kernel
        self.steps = [(list(layer.input), layer.output[0], LAYERS[kind][1], getattr(layer, kind), LAYERS[kind][0])
                      for kind, layer in self.layers]
        # convs that pad their input and finish their output (fp16 rounding, activations) themselves
        fused, self.taken = conv_chains(self.layers, set(outputs), half) if fuse else ({}, set())
        for index, (source, output, extra) in fused.items():
            _, _, _, params, many = self.steps[index]
            self.steps[index] = ([source], output, lambda p, x, extra=extra: _conv(p, x, **extra), params, many)
        self.finished = {index for index, (*_, extra) in fused.items() if "post" in extra}  # stored as made
        self.preprocessing = {p.featureName: p for p in nn.preprocessing}
        self.consts = {layer.output[0]: LAYERS[kind][1](layer.loadConstantND, [])  # computed once
                       for kind, layer in self.layers if kind == "loadConstantND"}
        # The names each layer reads last, released after it runs: holding every feature map of a
        # batch made MobileNetV2 224 2.3 times slower (fresh memory is page-faulted in again).
        self.dies = last_reads([[] if i in self.taken else inputs for i, (inputs, *_) in enumerate(self.steps)],
                               set(outputs) | set(self.consts))

    def adapt(self, plan) -> None:
        """Swap in the batch-taking kernels of nn_batching.nn_batch_plan (each the same at batch 1)."""
        for index, kernel in plan:
            inputs, output, _, params, many = self.steps[index]
            self.steps[index] = (inputs, output, kernel, params, many)

    def _preprocess(self, name: str, x: np.ndarray) -> np.ndarray:
        p = self.preprocessing.get(name)
        if p is None or p.WhichOneof("preprocessor") != "scaler":
            return x
        s = p.scaler
        bias = np.array([s.redBias, s.greenBias, s.blueBias], np.float32).reshape(1, 3, 1, 1)
        return x * np.float32(s.channelScale or 1.0) + bias

    def _store(self, x) -> np.ndarray:
        """A tensor as the unit that produced it holds it."""
        return half(x) if self.half else np.asarray(x, np.float32)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.half:
            return self._run(feeds)
        with np.errstate(over="ignore", invalid="ignore"):  # fp16 infinities are values here, not accidents
            return self._run(feeds)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = {k: self._store(self._preprocess(k, v)) for k, v in feeds.items()}
        env.update(self.consts)
        for index, ((kind, layer), (inputs, output, fn, params, many), dies) in enumerate(
                zip(self.layers, self.steps, self.dies)):
            if kind == "loadConstantND" or index in self.taken:
                continue
            try:
                xs = [env[i] for i in inputs]
                out = fn(params, xs) if many else fn(params, xs[0])
            except (ValueError, IndexError, KeyError) as exc:
                raise UnsupportedOpError(f"NeuralNetwork layer {layer.name} ({kind}) failed: {exc}") from None
            del xs  # (a dead input goes to the workspace below only if nothing else holds it)
            env[output] = out if index in self.finished else self._store(out)
            release(env, dies)
        return env
