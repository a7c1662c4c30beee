"""ML Program operations in numpy, as the MIL op definitions in coremltools specify them.

Each kernel takes the op's inputs as keyword arguments (numpy arrays, with
python scalars and strings as 0-d arrays) and returns one array or a tuple.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .workspace import empty


def _s(v):
    """0-d array -> python scalar; strings decoded."""
    v = np.asarray(v)
    item = v.item() if v.ndim == 0 else v
    return item.decode() if isinstance(item, bytes) else item


def _ints(v) -> list[int]:
    return [int(i) for i in np.asarray(v).ravel()]


def _axis(axis, rank: int) -> int:
    a = int(_s(axis))
    return a + rank if a < 0 else a


@dataclass(frozen=True)
class _PoolWindow:
    """A pool op's window inputs, under their MIL names and as the program gives them.

    The kernels take these as **window and build this object from it: the op's
    inputs stay named in one place, and an input the op does not define still
    raises TypeError, as a misnamed keyword argument would.
    """

    strides: object = None
    pad_type: object = "valid"
    pad: object = None


@dataclass(frozen=True)
class _ConvWindow(_PoolWindow):
    """A conv or conv_transpose op's window inputs: a pool's, plus dilations and groups."""

    dilations: object = None
    groups: object = 1

    def steps(self, rank: int) -> tuple[list[int], list[int]]:
        """Strides and dilations as ints; 1 along each axis the op leaves out."""
        strides = _ints(self.strides) if self.strides is not None else [1] * rank
        dilations = _ints(self.dilations) if self.dilations is not None else [1] * rank
        return strides, dilations


def _conv(x, weight, bias=None, post=None, **window):
    """post: the activation the program fused into this conv (mil.py), applied in place.

    A 1-D conv (x of rank 3, as Keras' Conv1D converts) runs as a 2-D one of height 1."""
    win = _ConvWindow(**window)
    if x.ndim == 3:
        one = lambda v, first: None if v is None else [first, *_ints(v)]  # noqa: E731
        pad = None if win.pad is None else [0, 0, *_ints(win.pad)]
        win2 = _ConvWindow(one(win.strides, 1), win.pad_type, pad, one(win.dilations, 1), win.groups)
        out = _conv(x[:, :, None, :], weight[:, :, None, :], bias, post, **vars(win2))
        return out[:, :, 0, :]
    kernel = weight.shape[2:]
    strides, dilations = win.steps(len(kernel))
    pads = K.resolve_pads(str(_s(win.pad_type)), win.pad, x.shape[2:], kernel, strides, dilations)
    return K.conv2d(x, weight, bias, K.ConvGeometry(strides, pads, dilations, int(_s(win.groups))), post)


def _conv_transpose(x, weight, bias=None, output_shape=None, **window):
    win = _ConvWindow(**window)
    kernel = weight.shape[2:]
    strides, dilations = win.steps(len(kernel))
    pad_type = str(_s(win.pad_type)).lower()
    out_hw = _ints(output_shape)[-2:] if output_shape is not None else None
    if pad_type == "same":
        full = [(i - 1) * s + (k - 1) * d + 1 for i, s, k, d in zip(x.shape[2:], strides, kernel, dilations)]
        want = out_hw or [i * s for i, s in zip(x.shape[2:], strides)]
        pads = [((f - w) // 2, f - w - (f - w) // 2) for f, w in zip(full, want)]
    elif pad_type == "valid":
        pads = [(0, 0)] * 2
    else:
        p = _ints(win.pad)
        pads = [(p[0], p[1]), (p[2], p[3])]
    return K.conv_transpose2d(x, weight, bias, K.ConvGeometry(strides, pads, dilations, int(_s(win.groups))), out_hw)


def _pool(kind):
    def run(x, kernel_sizes, ceil_mode=False, exclude_padding_from_average=False, **window):
        win = _PoolWindow(**window)
        kernel = _ints(kernel_sizes)
        strides = _ints(win.strides) if win.strides is not None else kernel  # MIL: strides default to the kernel
        pads = K.resolve_pads(str(_s(win.pad_type)), win.pad, x.shape[2:], kernel, strides, [1] * len(kernel))
        geo, exclude, ceil = K.ConvGeometry(strides, pads), bool(_s(exclude_padding_from_average)), bool(_s(ceil_mode))
        if len(kernel) == 2 and kind != "l2" and not ceil:
            return K.pool2d(x, kind, kernel, geo, exclude)
        return K.pool_nd(x, kind, kernel, geo, exclude, ceil)
    return run


def _reduce(fn):
    def run(x, axes=None, keep_dims=False):
        ax = tuple(_axis(a, x.ndim) for a in _ints(axes)) if axes is not None else None
        return fn(x, axis=ax, keepdims=bool(_s(keep_dims))).astype(np.float32)
    return run


@dataclass(frozen=True)
class _SliceSpec:
    """slice_by_index's inputs besides x, under their MIL names (built from **spec, as _PoolWindow is)."""

    begin: object
    end: object
    stride: object = None
    begin_mask: object = None
    end_mask: object = None
    squeeze_mask: object = None

    def index(self, rank: int) -> tuple:
        """The numpy index: a mask set on an axis means 'from the start', 'to the end' or 'drop this axis'."""
        b, e = _ints(self.begin), _ints(self.end)
        st = _ints(self.stride) if self.stride is not None else [1] * rank
        bm, em, sq = (_flags(m, rank) for m in (self.begin_mask, self.end_mask, self.squeeze_mask))
        return tuple(b[i] if sq[i] else slice(None if bm[i] else b[i], None if em[i] else e[i], st[i])
                     for i in range(rank))


def _flags(mask, rank: int) -> list[bool]:
    return [bool(v) for v in np.asarray(mask).ravel()] if mask is not None else [False] * rank


def _slice_by_index(x, **spec):
    return x[_SliceSpec(**spec).index(x.ndim)]


def _pad(x, pad, mode="constant", constant_val=0.0):
    p = _ints(pad)
    pairs = [(0, 0)] * (x.ndim - len(p) // 2) + [(p[2 * i], p[2 * i + 1]) for i in range(len(p) // 2)]
    mode = str(_s(mode))
    if mode == "constant":
        return K.pad_constant(x, pairs, float(_s(constant_val)))
    return np.pad(x, pairs, mode={"reflect": "reflect", "replicate": "edge"}[mode])


def _gelu(x, mode="EXACT"):
    mode = str(_s(mode))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi).astype(np.float32) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (1 + np.exp(-1.702 * x))
    return 0.5 * x * (1 + K.erf(x / np.sqrt(2).astype(np.float32)))


def _norm_axes(x, axes):
    return tuple(_axis(a, x.ndim) for a in _ints(axes))


def _layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    ax = _norm_axes(x, axes) if axes is not None else tuple(range(x.ndim))
    mean = x.mean(axis=ax, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=ax, keepdims=True)
    y = (x - mean) / np.sqrt(var + np.float32(_s(epsilon)))
    # gamma and beta have the normalised axes' shape, in axis order: they line up with those
    # axes, not with the trailing ones (axes [0, 2] of a rank-3 x takes gamma of shape (d0, d2)).
    along = [d if i in ax else 1 for i, d in enumerate(x.shape)]
    if gamma is not None:
        y = y * np.reshape(gamma, along)
    if beta is not None:
        y = y + np.reshape(beta, along)
    return y


def _batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + np.float32(_s(epsilon)))
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def _reshape(x, shape):
    """A 0 takes x's size on the axis it lines up with counting from the right, or 1 past x's rank
    (iOS 17; the same as iOS 15's rule, where a shape with a 0 has x's rank)."""
    dims = _ints(shape)
    lead = len(dims) - x.ndim
    dims = [(x.shape[i - lead] if i >= lead else 1) if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _concat(values, axis, interleave=False):
    ax = _axis(axis, values[0].ndim)
    if bool(_s(interleave)):  # equal shapes; slice i of each input in turn: a0 b0 a1 b1 ...
        stacked = np.stack(values, axis=ax + 1)
        return stacked.reshape(values[0].shape[:ax] + (-1,) + values[0].shape[ax + 1:])
    return np.concatenate(values, axis=ax)


def _classify(probabilities, classes):
    """The top class and the probabilities; a batch (batching.py) gets one top class per row."""
    labels = np.asarray(classes).ravel()
    if probabilities.ndim == 2 and len(probabilities) > 1:
        return labels[np.argmax(probabilities, axis=1)], probabilities
    return labels[int(np.argmax(probabilities.reshape(-1)))], probabilities


def _matmul(x, y, transpose_x=False, transpose_y=False):
    if bool(_s(transpose_x)):
        x = np.swapaxes(x, -1, -2)
    if bool(_s(transpose_y)):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _split(x, num_splits=None, split_sizes=None, axis=0):
    ax = _axis(axis, x.ndim)
    if split_sizes is not None:
        cuts = np.cumsum(_ints(split_sizes))[:-1]
        return tuple(np.split(x, cuts, axis=ax))
    return tuple(np.split(x, int(_s(num_splits)), axis=ax))


def _prelu(x, alpha):
    a = alpha.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x >= 0, x, x * a)


def _floats(x, y) -> bool:
    return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype == np.float32 \
        and (x.ndim > 0 or y.ndim > 0)


def arithmetic(ufunc, in_place: bool = False):
    """x (op) y as numpy computes it; two float32 operands write into a recycled buffer (a
    workspace's, see workspace.py) or, in_place, into x itself when x has the result's shape
    (the executor asks for that only when nothing else reads x)."""
    def run(x, y):
        if not _floats(x, y):
            return ufunc(x, y)
        shape = np.broadcast_shapes(x.shape, y.shape)
        return ufunc(x, y, out=x if in_place and x.shape == shape and x.flags.writeable else empty(shape))
    return run


f32 = np.float32
ARITHMETIC = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.true_divide}
MIL_OPS = {
    **{name: arithmetic(fn) for name, fn in ARITHMETIC.items()},
    "maximum": lambda x, y: np.maximum(x, y),
    "minimum": lambda x, y: np.minimum(x, y),
    "pow": lambda x, y: np.power(x, y),
    "relu": lambda x: np.maximum(x, f32(0)),
    "relu6": lambda x: np.clip(x, f32(0), f32(6)),
    "clip": lambda x, alpha, beta: np.clip(x, f32(_s(alpha)), f32(_s(beta))),
    "sigmoid": lambda x: f32(1) / (f32(1) + np.exp(-x)),
    "sigmoid_hard": lambda x, alpha=0.2, beta=0.5: np.clip(f32(_s(alpha)) * x + f32(_s(beta)), f32(0), f32(1)),
    "silu": lambda x: x / (f32(1) + np.exp(-x)),
    "tanh": lambda x: np.tanh(x),
    "elu": lambda x, alpha=1.0: np.where(x > 0, x, f32(_s(alpha)) * (np.exp(np.minimum(x, 0)) - 1)),
    "leaky_relu": lambda x, alpha=0.01: np.where(x >= 0, x, f32(_s(alpha)) * x),
    "prelu": _prelu,
    "softplus": lambda x: np.logaddexp(f32(0), x),
    "softsign": lambda x: x / (f32(1) + np.abs(x)),
    "gelu": _gelu,
    "softmax": lambda x, axis=-1: K.softmax(x, _axis(axis, x.ndim)),
    "linear_activation": lambda x, alpha=1.0, beta=0.0: f32(_s(alpha)) * x + f32(_s(beta)),
    "sqrt": lambda x: np.sqrt(x),
    "rsqrt": lambda x, epsilon=1e-12: f32(1) / np.sqrt(x + f32(_s(epsilon))),
    "inverse": lambda x, epsilon=1e-4: f32(1) / (x + f32(_s(epsilon))),
    "square": lambda x: np.square(x),
    "exp": lambda x: np.exp(x),
    "log": lambda x, epsilon=1e-45: np.log(x + f32(_s(epsilon))),
    "abs": lambda x: np.abs(x),
    "erf": lambda x: K.erf(x),
    "identity": lambda x: x,
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "linear": lambda x, weight, bias=None: x @ weight.T + (bias if bias is not None else f32(0)),
    "matmul": _matmul,
    "max_pool": _pool("max"),
    "avg_pool": _pool("avg"),
    "l2_pool": _pool("l2"),
    "reduce_mean": _reduce(np.mean),
    "reduce_max": _reduce(np.max),
    "reduce_min": _reduce(np.min),
    "reduce_sum": _reduce(np.sum),
    "reduce_prod": _reduce(np.prod),
    "reshape": _reshape,
    "transpose": lambda x, perm: np.transpose(x, _ints(perm)),
    "expand_dims": lambda x, axes: np.expand_dims(x, tuple(_ints(axes))),
    "squeeze": lambda x, axes=None: np.squeeze(x, tuple(_ints(axes)) if axes is not None else None),
    "tile": lambda x, reps: np.tile(x, _ints(reps)),
    "concat": _concat,
    "split": _split,
    "slice_by_index": _slice_by_index,
    "slice_by_size": lambda x, begin, size: x[tuple(slice(b, None if s == -1 else b + s)
                                                  for b, s in zip(_ints(begin), _ints(size)))],
    "pad": _pad,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "classify": _classify,
}


def affine_dequantize(quantized_data, zero_point, scale, axis):
    """constexpr_affine_dequantize (iOS 16): (q - zero_point) * scale along `axis`."""
    ax = _axis(axis, quantized_data.ndim)
    shape = [1] * quantized_data.ndim
    shape[ax] = -1
    zp = np.asarray(zero_point, np.float32)
    sc = np.asarray(scale, np.float32)
    zp = zp.reshape(shape) if zp.ndim else zp
    sc = sc.reshape(shape) if sc.ndim else sc
    return ((quantized_data.astype(np.float32) - zp) * sc).astype(np.float32)


def lut_to_dense(lut, indices, shape):
    """constexpr_lut_to_dense (iOS 16): n-bit indices packed LSB first into uint8, into a lookup table."""
    nbits = int(np.log2(lut.size))
    count = int(np.prod(_ints(shape)))
    bits = np.unpackbits(np.asarray(indices, np.uint8), bitorder="little")[: count * nbits].reshape(count, nbits)
    idx = bits.astype(np.int64) @ (1 << np.arange(nbits, dtype=np.int64))
    return np.asarray(lut)[idx].reshape(_ints(shape))


CONSTEXPR_OPS = {
    "constexpr_affine_dequantize": affine_dequantize,
    "constexpr_lut_to_dense": lut_to_dense,
    "constexpr_cast": lambda source_val, output_dtype: np.asarray(source_val).astype(
        {"fp32": np.float32, "fp16": np.float16}[str(_s(output_dtype))]),
}
