"""numpy kernels shared by the ML Program and NeuralNetwork evaluators. Tensors are NCHW float32."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .workspace import empty, scratch


@dataclass(frozen=True)
class ConvGeometry:
    """Where a convolution or pooling window goes, per spatial axis (H, W).

    Both file formats describe a window by these four values; building them once
    at the call site keeps each kernel's argument list to what it computes with.
    Pooling uses only strides and pads.
    """

    strides: Sequence[int]
    pads: Sequence[tuple[int, int]]  # (before, after) per axis, already resolved from 'same' / 'valid'
    dilations: Sequence[int] = (1, 1)
    groups: int = 1


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow/Core ML 'same' padding: the extra pixel goes at the end."""
    eff = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def resolve_pads(pad_type: str, pad, in_hw, kernel, strides, dilations) -> list[tuple[int, int]]:
    pad_type = pad_type.lower()
    if pad_type == "valid":
        return [(0, 0)] * len(kernel)
    if pad_type in ("same", "same_lower"):
        pads = [same_pads(s, k, st, d) for s, k, st, d in zip(in_hw, kernel, strides, dilations)]
        return [(b, a) for a, b in pads] if pad_type == "same_lower" else pads
    p = [int(v) for v in pad]
    return [(p[2 * i], p[2 * i + 1]) for i in range(len(kernel))]


def _windows(x: np.ndarray, kernel, strides, dilations=(1, 1)) -> np.ndarray:
    """View (N, C, kh, kw, OH, OW) of an already padded x; no copy."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    n, c, h, w = x.shape
    oh = (h - (kh - 1) * dh - 1) // sh + 1
    ow = (w - (kw - 1) * dw - 1) // sw + 1
    s = x.strides
    return as_strided(x, (n, c, kh, kw, oh, ow), (s[0], s[1], s[2] * dh, s[3] * dw, s[2] * sh, s[3] * sw),
                      writeable=False)


def _pad(x: np.ndarray, pads, value: float = 0.0, purpose: str = "padded input") -> np.ndarray:
    """x padded in H and W, in a scratch buffer: for a kernel's own use, never its output."""
    if not any(a or b for a, b in pads):
        return x
    (pt, pb), (pl, pr) = pads
    n, c, h, w = x.shape
    out = scratch(purpose, (n, c, h + pt + pb, w + pl + pr), x.dtype)
    for border in (out[:, :, :pt], out[:, :, pt + h:], out[:, :, pt:pt + h, :pl], out[:, :, pt:pt + h, pl + w:]):
        border[...] = value  # only the border: the inside is copied next
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def pad_constant(x: np.ndarray, pairs, value: float = 0.0) -> np.ndarray:
    """np.pad(constant) without its generality: one fill and one copy."""
    shape = tuple(d + a + b for d, (a, b) in zip(x.shape, pairs))
    out = np.full(shape, value, dtype=x.dtype)
    out[tuple(slice(a, a + d) for d, (a, _) in zip(x.shape, pairs))] = x
    return out


def conv2d(x, weight, bias, geo: ConvGeometry) -> np.ndarray:
    """Cross-correlation as Core ML and TensorFlow define it; weight is (O, C/groups, kh, kw)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    o, cg, kh, kw = weight.shape
    sh, sw = geo.strides
    n, c = x.shape[:2]
    groups = geo.groups
    if groups == c and cg == 1:
        out = _depthwise(x, weight, geo, o // c)  # pads while gathering: one copy fewer
    elif groups == 1:
        x = _pad(x, geo.pads)
        if kh == kw == 1 and sh == sw == 1:
            out = empty((n, o, *x.shape[2:]))
            np.matmul(weight.reshape(o, c), x.reshape(n, c, -1), out=out.reshape(n, o, -1))
        else:
            win = _windows(x, (kh, kw), geo.strides, geo.dilations)
            oh, ow = win.shape[4:]
            cols = scratch("im2col", (n, c * kh * kw, oh * ow))
            np.copyto(cols.reshape(win.shape), win)
            out = empty((n, o, oh, ow))
            np.matmul(weight.reshape(o, -1), cols, out=out.reshape(n, o, -1))
    else:
        x = _pad(x, geo.pads)
        step_in, step_out = c // groups, o // groups
        one_group = replace(geo, pads=((0, 0), (0, 0)), groups=1)  # x is padded once, for all groups
        out = np.concatenate([
            conv2d(x[:, g * step_in:(g + 1) * step_in], weight[g * step_out:(g + 1) * step_out], None, one_group)
            for g in range(groups)], axis=1)
    out = out.astype(np.float32, copy=False)
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


DEPTHWISE_BLOCK_BYTES = 1 << 20


def _depthwise(x, weight, geo: ConvGeometry, multiplier: int) -> np.ndarray:
    """Depthwise convolution as shifted multiply-adds over flattened planes.

    Each tap is one contiguous run per channel (the row wrap-around lands in
    columns cut off at the end); a stride-2 input is first split into its four
    phase planes.
    """
    if multiplier != 1:
        x = np.repeat(x, multiplier, axis=1)
    _, _, kh, kw = weight.shape
    n, c, h, w = x.shape
    (sh, sw), (dh, dw) = geo.strides, geo.dilations
    (pt, pb), (pl, pr) = geo.pads
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    if dh != 1 or dw != 1 or sh != sw or sh not in (1, 2):
        return _depthwise_direct(_pad(x, geo.pads), weight, geo, (oh, ow))
    s = sh
    reach = (kh - 1) // s + 1, (kw - 1) // s + 1
    rows, cols = oh + reach[0], ow + reach[1]  # one spare row absorbs the last tap's overrun
    # A batch is n*c planes, each with its channel's taps: the blocks span samples.
    phases = [(a, b) for a in range(min(s, kh)) for b in range(min(s, kw))]
    planes = scratch("depthwise planes", (len(phases), n, c, rows, cols))
    flat = {ab: _phase_plane(x, (pt, pl), s, ab, planes[k]).reshape(n * c, rows * cols)
            for k, ab in enumerate(phases)}
    sources, taps = _depthwise_sources(np.tile(weight[:, 0], (n, 1, 1)), s)
    size, length = oh * cols, (oh + reach[0] - 1) * cols
    out = scratch("depthwise sums", (n * c, 1, size))
    # Copy each column shift of a few planes once, as runs long enough for every row shift;
    # then per row shift one small matmul per plane over a strided view of those runs does
    # its taps' multiply-adds (a third of the copying of one run per tap).
    block = max(1, DEPTHWISE_BLOCK_BYTES // (4 * len(sources) * length))
    buf = scratch("depthwise runs", (block, len(sources), length))
    more = scratch("depthwise more", (block, 1, size))
    for c0 in range(0, n * c, block):
        c1 = min(n * c, c0 + block)
        part = buf[: c1 - c0]
        for k, (a, b, q) in enumerate(sources):
            part[:, k] = flat[a, b][c0:c1, q:q + length]
        for r, t in enumerate(taps):
            dest = out[c0:c1] if r == 0 else more[: c1 - c0]
            np.matmul(t[c0:c1], part[:, : t.shape[2], r * cols:r * cols + size], out=dest)
            if r:
                out[c0:c1] += dest
    result = empty((n, c, oh, ow))
    np.copyto(result, out.reshape(n, c, oh, cols)[..., :ow])
    return result


def _depthwise_sources(w, s: int):
    """The runs to copy, (phase row a, phase column b, column shift q), ordered by a, and per row
    shift r the (planes, 1, k) taps over the first k runs: tap (a + s*r, b + s*q) of each plane.

    Row shift r uses only phases a < kh - s*r, a prefix of the runs, so no tap is a zero weight
    (0 * inf would make a NaN the textbook sum does not have).
    """
    _, kh, kw = w.shape
    sources = [(a, b, q) for a in range(min(s, kh)) for b in range(min(s, kw)) for q in range((kw - 1 - b) // s + 1)]
    taps = []
    for r in range((kh - 1) // s + 1):
        used = [(a, b, q) for a, b, q in sources if a + s * r < kh]
        taps.append(np.ascontiguousarray(np.stack([w[:, a + s * r, b + s * q] for a, b, q in used], axis=-1)[:, None]))
    return sources, taps


def _phase_plane(x, top_left, s: int, phase, plane) -> np.ndarray:
    """Fill plane (n, c, rows, cols) with rows a, a+s, ... and columns b, b+s, ... of x
    zero-padded by top_left; returns it. top_left is (pt, pl), phase is (a, b).
    """
    (pt, pl), (a, b), (rows, cols) = top_left, phase, plane.shape[2:]
    h, w = x.shape[2:]
    k0, k1 = max(0, -((a - pt) // s)), min(rows, (h - 1 + pt - a) // s + 1)
    j0, j1 = max(0, -((b - pl) // s)), min(cols, (w - 1 + pl - b) // s + 1)
    if k1 <= k0 or j1 <= j0:
        plane[...] = 0
        return plane
    # only the border is zeroed: one pass fewer
    plane[:, :, :k0] = 0
    plane[:, :, k1:] = 0
    plane[:, :, k0:k1, :j0] = 0
    plane[:, :, k0:k1, j1:] = 0
    plane[:, :, k0:k1, j0:j1] = x[:, :, a + s * k0 - pt: a + s * (k1 - 1) - pt + 1: s,
                                  b + s * j0 - pl: b + s * (j1 - 1) - pl + 1: s]
    return plane


def _depthwise_direct(x, weight, geo: ConvGeometry, out_hw) -> np.ndarray:
    """x is already padded: geo.pads is not applied again."""
    (sh, sw), (dh, dw), (oh, ow) = geo.strides, geo.dilations, out_hw
    c = x.shape[1]
    _, _, kh, kw = weight.shape
    out = np.zeros((x.shape[0], c, oh, ow), np.float32)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            out += patch * weight[:, 0, i, j].reshape(1, -1, 1, 1)
    return out


def conv_transpose2d(x, weight, bias, geo: ConvGeometry, output_hw=None) -> np.ndarray:
    """Transposed convolution; weight is (C_in, O/groups, kh, kw) as Core ML stores it.

    geo.pads are cropped from the full output, then output_hw (if given) trims or zero-extends it.
    """
    if geo.groups != 1:
        raise NotImplementedError("grouped conv_transpose")
    n, c, h, w = x.shape
    _, o, kh, kw = weight.shape
    (sh, sw), (dh, dw) = geo.strides, geo.dilations
    full_h, full_w = (h - 1) * sh + (kh - 1) * dh + 1, (w - 1) * sw + (kw - 1) * dw + 1
    out = np.zeros((n, o, full_h, full_w), np.float32)
    cols = np.tensordot(x, weight, axes=([1], [0]))  # (n, h, w, o, kh, kw)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh: i * dh + sh * (h - 1) + 1: sh, j * dw: j * dw + sw * (w - 1) + 1: sw] += \
                cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    (pt, pb), (pl, pr) = geo.pads
    out = out[:, :, pt: full_h - pb, pl: full_w - pr]
    if output_hw is not None:
        out = _fit(out, output_hw)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


def _fit(x, hw):
    h, w = hw
    x = x[:, :, :h, :w]
    if x.shape[2] < h or x.shape[3] < w:
        x = np.pad(x, [(0, 0), (0, 0), (0, h - x.shape[2]), (0, w - x.shape[3])])
    return x


def pool2d(x, kind: str, kernel, geo: ConvGeometry, exclude_padding: bool, ceil_mode: bool = False) -> np.ndarray:
    """Max or average pooling over windows placed by geo.strides and geo.pads (pooling has no dilation)."""
    kh, kw = kernel
    strides, pads = geo.strides, geo.pads
    if ceil_mode:
        pads = [(a, b + s - 1) for (a, b), s in zip(pads, strides)]
    if kind == "max":
        xp = _pad(x, pads, -np.inf)
        return _windows(np.ascontiguousarray(xp), kernel, strides).max(axis=(2, 3))
    xp = _pad(x, pads, 0.0)
    total = _windows(np.ascontiguousarray(xp), kernel, strides).sum(axis=(2, 3), dtype=np.float32)
    if exclude_padding and any(a or b for a, b in pads):
        ones = _pad(np.ones((1, 1, *x.shape[2:]), np.float32), pads, 0.0, "padded ones")
        count = _windows(ones, kernel, strides).sum(axis=(2, 3))
        return total / count
    return total / np.float32(kh * kw)


def pool_nd(x, kind: str, kernel, geo: ConvGeometry, exclude_padding: bool = False, ceil_mode: bool = False):
    """max / avg / l2 pooling over any number of spatial axes (pool2d is the fast path for 2-D).

    ceil_mode as PyTorch (and MIL) define it: the output rounds up, but a last window that
    would start inside the end padding is dropped. An average divides by the window's cells
    inside the input, plus the explicit padding unless exclude_padding.
    """
    outs, ends = [], []
    for d, k, s, (a, b) in zip(x.shape[2:], kernel, geo.strides, geo.pads):
        span = d + a + b - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= d + a and a + b > 0:
            o -= 1
        outs.append(o)
        ends.append(b + max(0, (o - 1) * s + k - (d + a + b)))
    pads = [(a, e) for (a, _), e in zip(geo.pads, ends)]

    def windows(t, fill):
        padded = np.pad(t, [(0, 0)] * (t.ndim - len(kernel)) + pads, constant_values=fill)
        view = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=tuple(range(-len(kernel), 0)))
        return view[(Ellipsis,) + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(outs, geo.strides))
                    + (slice(None),) * len(kernel)]

    axes = tuple(range(-len(kernel), 0))
    if kind == "max":
        return windows(x, -np.inf).max(axis=axes)
    if kind == "l2":
        return np.sqrt(np.square(windows(x, 0.0)).sum(axis=axes, dtype=np.float32))
    total = windows(x, 0.0).sum(axis=axes, dtype=np.float32)
    inside = np.pad(np.ones(x.shape[2:], np.float32), geo.pads, constant_values=0.0 if exclude_padding else 1.0)
    count = _window_counts(inside, geo.pads, pads, kernel, outs, geo.strides)
    return total / count


def _window_counts(inside, explicit, pads, kernel, outs, strides):
    """How many cells of each window count towards an average: `inside` is the explicitly padded
    region (ones where a cell counts), extended by the ceil-mode padding, which never counts."""
    extra = [(0, e - b) for (_, b), (_, e) in zip(explicit, pads)]
    padded = np.pad(inside, extra, constant_values=0.0)
    view = np.lib.stride_tricks.sliding_window_view(padded, kernel)
    view = view[tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(outs, strides))]
    return view.sum(axis=tuple(range(-len(kernel), 0)))


def resize_bilinear(x, out_h: int, out_w: int, mode: str) -> np.ndarray:
    """mode: 'align_corners', 'half_pixel' (TF half_pixel_centers) or 'asymmetric' (TF legacy)."""
    def coords(n_in, n_out):
        if mode == "align_corners":
            src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        elif mode == "half_pixel":
            src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        else:
            src = np.arange(n_out) * (n_in / n_out)
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, fy = coords(x.shape[2], out_h)
    x0, x1, fx = coords(x.shape[3], out_w)
    top = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]
    return (top[..., x0] * (1 - fx) + top[..., x1] * fx).astype(np.float32)


def resize_nearest(x, out_h: int, out_w: int) -> np.ndarray:
    ys = np.minimum((np.arange(out_h) * x.shape[2] / out_h).astype(np.int64), x.shape[2] - 1)
    xs = np.minimum((np.arange(out_w) * x.shape[3] / out_w).astype(np.int64), x.shape[3] - 1)
    return x[:, :, ys][..., xs]


def softmax(x, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf as _erf

    return _erf(x).astype(np.float32)


_U32 = np.uint32


def round_fp16(x: np.ndarray) -> np.ndarray:
    """x rounded to the nearest float16 value (ties to even), held in float32: the bits of
    x.astype(np.float16).astype(np.float32), overflow to +-inf included, without its cost.

    numpy's float16 cast takes 40-150 ns per element once values fall below fp16's normal range
    or above its largest value (random-weight activations do both), against about 2 ns here:
    the float32 bits are rounded to 10 mantissa bits in integer arithmetic, and only fp16's
    subnormals (fixed step 2^-24) and overflow take a second pass.
    """
    x = np.ascontiguousarray(x, np.float32)
    bits = x.view(_U32)
    rounded = bits >> _U32(13)  # the lowest kept bit: a tie goes to the even neighbour
    rounded &= _U32(1)
    rounded += _U32(0x0FFF)
    rounded += bits
    rounded &= _U32(0xFFFFE000)  # a carry out of the mantissa moves the exponent up, as it should
    out = rounded.view(np.float32)
    magnitude = bits & _U32(0x7FFFFFFF)
    if (subnormal := magnitude - _U32(1) < _U32(0x387FFFFF)).any():  # 0 < |x| < 2^-14 (0 wraps round)
        step = np.abs(x)
        with np.errstate(invalid="ignore"):  # a signalling NaN elsewhere in x; copyto drops it
            step += np.float32(0.75)  # float32's step at 0.75 is 2^-24, fp16's subnormal step
            step -= np.float32(0.75)
        np.copysign(step, x, out=step)
        np.copyto(out, step, where=subnormal)
    if (overflow := magnitude >= _U32(0x477FF000)).any():  # 65520 and up round past 65504
        np.copyto(out, np.copysign(np.float32(np.inf), x), where=overflow)
        np.copyto(out, x, where=magnitude > _U32(0x7F800000))  # NaN stays NaN
    return out
