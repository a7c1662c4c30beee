"""ML Program tensor ops besides mil_ops.py's: gather/scatter, shapes, sorting, rearranging, reductions.

Kernels as in mil_ops.py (the op's inputs as keyword arguments). Semantics follow the MIL op
definitions in coremltools (mil/ops/defs/iOS15 ... iOS18), which follow TensorFlow's where they
name it (gather, gather_nd, depth_to_space, space_to_batch, reverse_sequence).
"""

from __future__ import annotations

import numpy as np

from .errors import PredictionError
from .mil_ops import _axis, _ints, _s, _SliceSpec

_SCATTER = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "max": np.maximum,
            "min": np.minimum}


def _valid(indices, size, validate) -> np.ndarray:
    """Indices as int64. With validate_indices (iOS 17) one outside [0, size) fails the prediction, as
    in Core ML. size is one bound, or for gather_nd/scatter_nd one per column of the last axis."""
    idx = np.asarray(indices).astype(np.int64)
    if validate is not None and bool(_s(validate)) and idx.size and (np.any(idx < 0) or np.any(idx >= size)):
        raise PredictionError(f"indices out of range [0, {size}) with validate_indices: {idx.min()} .. {idx.max()}")
    return idx


def _scatter_into(data, index, updates, mode) -> np.ndarray:
    """data with updates applied at `index` (a numpy index) by `mode`; repeated indices accumulate."""
    out = np.array(data, copy=True)
    mode = str(_s(mode))
    if mode == "update":
        out[index] = updates
    else:
        _SCATTER[mode].at(out, index, np.asarray(updates, out.dtype))
    return out


def _gather(x, indices, axis=0, batch_dims=0, validate_indices=None):
    ax, b = _axis(axis, x.ndim), int(_s(batch_dims))
    idx = _valid(indices, x.shape[ax], validate_indices)
    if b == 0:
        return np.take(x, idx, axis=ax)
    lead = x.shape[:b]
    parts = [np.take(x[i], idx[i], axis=ax - b) for i in np.ndindex(*lead)]
    return np.stack(parts).reshape(lead + parts[0].shape)


def _gather_nd(x, indices, batch_dims=0, validate_indices=None):
    b = int(_s(batch_dims))
    idx = _valid(indices, np.array(x.shape[b:b + np.shape(indices)[-1]]), validate_indices)
    if b == 0:
        return x[tuple(np.moveaxis(idx, -1, 0))]
    lead = x.shape[:b]
    parts = [x[i][tuple(np.moveaxis(idx[i], -1, 0))] for i in np.ndindex(*lead)]
    return np.stack(parts).reshape(lead + parts[0].shape)


def _along_axis_index(indices, axis: int, size: int, validate=None) -> tuple:
    idx = _valid(indices, size, validate)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return tuple(grid)


def _gather_along_axis(x, indices, axis=0, validate_indices=None):
    ax = _axis(axis, x.ndim)
    return x[_along_axis_index(indices, ax, x.shape[ax], validate_indices)]


# iOS 17 scatter ops (they have validate_indices) take indices in [0, size) only; outside it, and not
# validated, Core ML's result is undefined: the evaluator drops those updates (as TensorFlow's GPU
# scatter does) rather than wrap a negative index the way the iOS 15 ops define it.

def _in_range(idx, size, validate) -> np.ndarray:
    """Which index rows an iOS 17 scatter applies (all of them for an iOS 15 op, validate is None)."""
    if validate is None:
        return np.ones(idx.shape[:-1] if np.ndim(size) else idx.shape, bool)
    inside = (idx >= 0) & (idx < size)
    return inside.all(axis=-1) if np.ndim(size) else inside


def _scatter(data, indices, updates, axis=0, mode="add", validate_indices=None):
    ax = _axis(axis, data.ndim)
    idx = _valid(indices, data.shape[ax], validate_indices)
    keep = _in_range(idx, data.shape[ax], validate_indices)
    moved = np.moveaxis(np.array(data, copy=True), ax, 0)
    out = _scatter_into(moved, idx[keep], np.moveaxis(updates, ax, 0)[keep], mode)
    return np.moveaxis(out, 0, ax)


def _scatter_along_axis(data, indices, updates, axis=0, mode="add", validate_indices=None):
    ax = _axis(axis, data.ndim)
    idx = _valid(indices, data.shape[ax], validate_indices)
    keep = _in_range(idx, data.shape[ax], validate_indices)
    where = [np.broadcast_to(g, idx.shape)[keep] for g in _along_axis_index(np.where(keep, idx, 0), ax, data.shape[ax])]
    return _scatter_into(data, tuple(where), np.asarray(updates)[keep], mode)


def _scatter_nd(data, indices, updates, mode="add", validate_indices=None):
    dims = np.array(data.shape[:np.shape(indices)[-1]])
    idx = _valid(indices, dims, validate_indices)
    keep = _in_range(idx, dims, validate_indices)
    return _scatter_into(data, tuple(np.moveaxis(idx[keep], -1, 0)), np.asarray(updates)[keep], mode)


def _sort_order(x, axis: int, ascending: bool) -> np.ndarray:
    """Indices that sort x along axis; ties keep their order (stable), as TensorFlow's top_k does."""
    return np.argsort(x if ascending else -x.astype(np.float64), axis=axis, kind="stable")


def _topk(x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"):
    ax = _axis(axis, x.ndim)
    n = int(_s(k))
    n = x.shape[ax] if n == -1 else n
    order = np.take(_sort_order(x, ax, bool(_s(ascending))), np.arange(n), axis=ax)
    values = np.take_along_axis(x, order, axis=ax)
    return (values, order.astype(str(_s(output_indices_dtype)))) if bool(_s(return_indices)) else values


def _band_part(x, lower=-1, upper=-1):
    lo, up = int(_s(lower)), int(_s(upper))
    m, n = np.indices(x.shape[-2:])
    keep = ((lo < 0) | (m - n <= lo)) & ((up < 0) | (n - m <= up))
    return np.where(keep, x, np.zeros((), x.dtype))


def _cumsum(x, axis=0, exclusive=False, reverse=False):
    ax = _axis(axis, x.ndim)
    y = np.flip(x, ax) if bool(_s(reverse)) else x
    out = np.cumsum(y, axis=ax, dtype=x.dtype)
    if bool(_s(exclusive)):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=ax)), np.take(out, np.arange(out.shape[ax] - 1), axis=ax)],
                             axis=ax)
    return np.flip(out, ax) if bool(_s(reverse)) else out


def _one_hot(indices, one_hot_vector_size, axis=-1, on_value=1.0, off_value=0.0):
    idx = np.asarray(indices).astype(np.int64)
    size = int(_s(one_hot_vector_size))
    ax = _axis(axis, idx.ndim + 1)
    hot = np.expand_dims(idx, ax) == np.arange(size).reshape((-1,) + (1,) * (idx.ndim - ax))
    on, off = np.asarray(on_value), np.asarray(off_value)
    return np.where(hot, on, off).astype(np.result_type(on, off))


def _flatten2d(x, axis=1):
    a = int(_s(axis))
    a = a + x.ndim if a < 0 else a
    return x.reshape(int(np.prod(x.shape[:a])), -1)


def _sliding_windows(x, axis, size, stride=1):
    ax, n, s = _axis(axis, x.ndim), int(_s(size)), int(_s(stride))
    windows = np.lib.stride_tricks.sliding_window_view(x, n, axis=ax)  # window axis last
    windows = np.take(windows, np.arange(0, windows.shape[ax], s), axis=ax)
    return np.ascontiguousarray(np.moveaxis(windows, -1, ax + 1))


def _reverse_sequence(x, lengths, seq_axis=0, batch_axis=0):
    out = np.array(x, copy=True)
    sa, ba = _axis(seq_axis, x.ndim), _axis(batch_axis, x.ndim)
    for b, n in enumerate(_ints(lengths)):
        src = [slice(None)] * x.ndim
        src[ba], src[sa] = b, slice(0, n)
        dst = list(src)
        dst[sa] = slice(n - 1, None, -1) if n > 0 else slice(0, 0)
        out[tuple(dst)] = x[tuple(src)]
    return out


def _depth_to_space(x, block_size):
    """TensorFlow's DCR order: the block index is the outer part of the channel."""
    b = int(_s(block_size))
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def _space_to_depth(x, block_size):
    b = int(_s(block_size))
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


def _pixel_shuffle(x, upscale_factor):
    """PyTorch's CRD order: the channel index is the outer part."""
    f = int(_s(upscale_factor))
    n, c, h, w = x.shape
    return x.reshape(n, c // (f * f), f, f, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (f * f), h * f, w * f)


def _pixel_unshuffle(x, downscale_factor):
    f = int(_s(downscale_factor))
    n, c, h, w = x.shape
    return x.reshape(n, c, h // f, f, w // f, f).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * f * f, h // f, w // f)


def _space_to_batch(x, block_shape, paddings):
    (b0, b1), p = _ints(block_shape), _ints(paddings)
    x = np.pad(x, [(0, 0), (0, 0), (p[0], p[1]), (p[2], p[3])])
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b0, b0, w // b1, b1).transpose(3, 5, 0, 1, 2, 4).reshape(b0 * b1 * n, c, h // b0, w // b1)


def _batch_to_space(x, block_shape, crops):
    (b0, b1), cr = _ints(block_shape), _ints(crops)
    n, c, h, w = x.shape
    y = x.reshape(b0, b1, n // (b0 * b1), c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n // (b0 * b1), c, h * b0, w * b1)
    return y[:, :, cr[0]: h * b0 - cr[1], cr[2]: w * b1 - cr[3]]


def _crop(x, crop_height, crop_width):
    (t, b), (left, r) = _ints(crop_height), _ints(crop_width)
    return x[..., t: x.shape[-2] - b, left: x.shape[-1] - r]


def _slice_update(x, update, **spec):
    out = np.array(x, copy=True)
    index = _SliceSpec(**spec).index(x.ndim)
    out[index] = np.asarray(update).reshape(out[index].shape)
    return out


def _reduce_arg(fn):
    def run(x, axis=-1, keep_dims=False, output_dtype="int32"):
        ax = _axis(axis, x.ndim)
        out = fn(x, axis=ax)
        return (np.expand_dims(out, ax) if bool(_s(keep_dims)) else out).astype(str(_s(output_dtype)))
    return run


def _reduce(fn):
    def run(x, axes=None, keep_dims=False):
        ax = tuple(_axis(a, x.ndim) for a in _ints(axes)) if axes is not None else None
        return fn(x.astype(np.float32) if x.dtype.kind != "f" else x, ax, bool(_s(keep_dims)))
    return run


def _log_sum_exp(x, ax, keep):
    top = np.max(x, axis=ax, keepdims=True)
    out = np.log(np.sum(np.exp(x - top), axis=ax, keepdims=True)) + top
    return out if keep else np.squeeze(out, axis=ax if ax is not None else None)


def _reshape_like(x, ref_tensors, begins, ends, end_masks):
    shape: list[int] = []
    for ref, b, e, m in zip(ref_tensors, _ints(begins), _ints(ends), [bool(v) for v in np.ravel(end_masks)]):
        shape += list(ref.shape[b:] if m else ref.shape[b:e])
    return x.reshape(shape)


def sparse_to_dense(nonzero_data, mask, shape=None):
    """constexpr_sparse_to_dense. iOS 16: mask is a flat bit field (LSB first) and shape is given;
    iOS 18: mask is a uint1 tensor of the output's shape. Set bits take nonzero_data in row-major order."""
    if shape is not None:
        count = int(np.prod(_ints(shape)))
        bits = np.unpackbits(np.asarray(mask, np.uint8), bitorder="little")[:count].astype(bool)
        out_shape = _ints(shape)
    else:
        bits, out_shape = np.asarray(mask).astype(bool).ravel(), list(np.shape(mask))
    out = np.zeros(bits.size, np.asarray(nonzero_data).dtype)
    out[bits] = np.asarray(nonzero_data).ravel()
    return out.reshape(out_shape)


TENSOR_OPS = {
    "reshape_like": _reshape_like,
    "gather": _gather,
    "gather_nd": _gather_nd,
    "gather_along_axis": _gather_along_axis,
    "scatter": _scatter,
    "scatter_nd": _scatter_nd,
    "scatter_along_axis": _scatter_along_axis,
    "shape": lambda x: np.array(x.shape, np.int32),
    "fill": lambda shape, value=0.0: np.full(_ints(shape), np.asarray(value)),
    "fill_like": lambda ref_tensor, value=0.0: np.full(ref_tensor.shape, np.asarray(value)),
    "range_1d": lambda start, end, step: np.arange(np.asarray(start), np.asarray(end), np.asarray(step)),
    "stack": lambda values, axis: np.stack(values, axis=_axis(axis, values[0].ndim + 1)),
    "select": lambda cond, a, b: np.where(np.asarray(cond).astype(bool), a, b),
    "non_zero": lambda x: np.argwhere(x).astype(np.int32),
    "one_hot": _one_hot,
    "topk": _topk,
    "argsort": lambda x, axis=-1, ascending=False: _sort_order(x, _axis(axis, x.ndim), bool(_s(ascending))).astype(np.int32),
    "band_part": _band_part,
    "cumsum": _cumsum,
    "flatten2d": _flatten2d,
    "reverse": lambda x, axes=None: np.flip(x, tuple(_axis(a, x.ndim) for a in _ints(axes)) if axes is not None else None),
    "reverse_sequence": _reverse_sequence,
    "sliding_windows": _sliding_windows,
    "depth_to_space": _depth_to_space,
    "space_to_depth": _space_to_depth,
    "pixel_shuffle": _pixel_shuffle,
    "pixel_unshuffle": _pixel_unshuffle,
    "space_to_batch": _space_to_batch,
    "batch_to_space": _batch_to_space,
    "crop": _crop,
    "slice_update": _slice_update,
    "einsum": lambda values, equation: np.einsum(str(_s(equation)), *values),
    "reduce_argmax": _reduce_arg(np.argmax),
    "reduce_argmin": _reduce_arg(np.argmin),
    "reduce_l1_norm": _reduce(lambda x, ax, k: np.sum(np.abs(x), axis=ax, keepdims=k)),
    "reduce_l2_norm": _reduce(lambda x, ax, k: np.sqrt(np.sum(np.square(x), axis=ax, keepdims=k))),
    "reduce_log_sum": _reduce(lambda x, ax, k: np.log(np.sum(x, axis=ax, keepdims=k))),
    "reduce_log_sum_exp": _reduce(_log_sum_exp),
    "reduce_sum_square": _reduce(lambda x, ax, k: np.sum(np.square(x), axis=ax, keepdims=k)),
}
