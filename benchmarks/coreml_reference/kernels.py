"""numpy kernels shared by the ML Program and NeuralNetwork evaluators. Tensors are NCHW float32."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .depthwise import depthwise
from .geometry import ConvGeometry
from .workspace import empty, scratch


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


def pad_planes(x: np.ndarray, pads, value: float = 0.0, purpose: str = "padded input") -> np.ndarray:
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


def conv2d(x, weight, bias, geo: ConvGeometry, post=None) -> np.ndarray:
    """Cross-correlation as Core ML and TensorFlow define it; weight is (O, C/groups, kh, kw).

    post(out), if given, finishes the output in place after the bias: the fp16 rounding and
    activation of a conv the program fused with its relu (mil.py)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    o, cg, kh, kw = weight.shape
    sh, sw = geo.strides
    n, c = x.shape[:2]
    groups = geo.groups
    if groups == c and cg == 1:
        return depthwise(x, weight, bias, geo, post)  # pads while gathering: one copy fewer
    if groups == 1:
        x = pad_planes(x, geo.pads)
        if kh == kw == 1 and sh == sw == 1:
            out = empty((n, o, *x.shape[2:]))
            w2, x3, o3 = weight.reshape(o, c), x.reshape(n, c, -1), out.reshape(n, o, -1)
            for i in range(n):  # a sample at a time: its bias and activation while it is in cache
                np.matmul(w2, x3[i], out=o3[i])  # the product np.matmul of the stack makes per sample
                _finish(o3[i], bias[:, None] if bias is not None else None, post)
            return out
        else:
            win = _windows(x, (kh, kw), geo.strides, geo.dilations)
            oh, ow = win.shape[4:]
            cols = scratch("im2col", (n, c * kh * kw, oh * ow))
            np.copyto(cols.reshape(win.shape), win)
            out = empty((n, o, oh, ow))
            np.matmul(weight.reshape(o, -1), cols, out=out.reshape(n, o, -1))
    else:
        x = pad_planes(x, geo.pads)
        step_in, step_out = c // groups, o // groups
        one_group = replace(geo, pads=((0, 0), (0, 0)), groups=1)  # x is padded once, for all groups
        out = np.concatenate([
            conv2d(x[:, g * step_in:(g + 1) * step_in], weight[g * step_out:(g + 1) * step_out], None, one_group)
            for g in range(groups)], axis=1)
    out = out.astype(np.float32, copy=False)
    _finish(out, bias.reshape(-1, 1, 1) if bias is not None else None, post)
    return out


def _finish(out, bias, post) -> None:
    """The bias (broadcast along out's channel axis), then post, in place."""
    if bias is not None:
        out += bias
    if post is not None:
        post(out)


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
        xp = pad_planes(x, pads, -np.inf)
        return _windows(np.ascontiguousarray(xp), kernel, strides).max(axis=(2, 3))
    xp = pad_planes(x, pads, 0.0)
    total = _windows(np.ascontiguousarray(xp), kernel, strides).sum(axis=(2, 3), dtype=np.float32)
    if exclude_padding and any(a or b for a, b in pads):
        ones = pad_planes(np.ones((1, 1, *x.shape[2:]), np.float32), pads, 0.0, "padded ones")
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
