"""numpy kernels shared by the ML Program and NeuralNetwork evaluators. Tensors are NCHW float32."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


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


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int) -> np.ndarray:
    """View (N, C, kh, kw, OH, OW) of an already padded x; no copy."""
    n, c, h, w = x.shape
    oh = (h - (kh - 1) * dh - 1) // sh + 1
    ow = (w - (kw - 1) * dw - 1) // sw + 1
    s = x.strides
    return as_strided(x, (n, c, kh, kw, oh, ow), (s[0], s[1], s[2] * dh, s[3] * dw, s[2] * sh, s[3] * sw),
                      writeable=False)


def _pad(x: np.ndarray, pads, value: float = 0.0) -> np.ndarray:
    if not any(a or b for a, b in pads):
        return x
    return pad_constant(x, [(0, 0), (0, 0), *pads], value)


def pad_constant(x: np.ndarray, pairs, value: float = 0.0) -> np.ndarray:
    """np.pad(constant) without its generality: one fill and one copy."""
    shape = tuple(d + a + b for d, (a, b) in zip(x.shape, pairs))
    out = np.full(shape, value, dtype=x.dtype)
    out[tuple(slice(a, a + d) for d, (a, _) in zip(x.shape, pairs))] = x
    return out


def conv2d(x, weight, bias, strides, pads, dilations, groups) -> np.ndarray:
    """Cross-correlation as Core ML and TensorFlow define it; weight is (O, C/groups, kh, kw)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    o, cg, kh, kw = weight.shape
    sh, sw = strides
    dh, dw = dilations
    n, c = x.shape[:2]
    if groups == c and cg == 1:
        out = _depthwise(x, weight, sh, sw, dh, dw, o // c, pads)  # pads while gathering: one copy fewer
    elif groups == 1:
        x = _pad(x, pads)
        if kh == kw == 1 and sh == sw == 1:
            out = np.matmul(weight.reshape(o, c), x.reshape(n, c, -1)).reshape(n, o, *x.shape[2:])
        else:
            win = _windows(x, kh, kw, sh, sw, dh, dw)
            oh, ow = win.shape[4:]
            cols = win.reshape(n, c * kh * kw, oh * ow)  # im2col (this reshape copies)
            out = np.matmul(weight.reshape(o, -1), cols).reshape(n, o, oh, ow)
    else:
        x = _pad(x, pads)
        step_in, step_out = c // groups, o // groups
        out = np.concatenate([
            conv2d(x[:, g * step_in:(g + 1) * step_in], weight[g * step_out:(g + 1) * step_out], None,
                   strides, [(0, 0), (0, 0)], dilations, 1) for g in range(groups)], axis=1)
    out = out.astype(np.float32, copy=False)
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


DEPTHWISE_BLOCK_BYTES = 1 << 20


def _depthwise(x, weight, sh, sw, dh, dw, multiplier, pads=((0, 0), (0, 0))) -> np.ndarray:
    """Depthwise convolution as kh*kw shifted multiply-adds over flattened planes.

    Each tap is one contiguous run per channel (the row wrap-around lands in
    columns cut off at the end); a stride-2 input is first split into its four
    phase planes.
    """
    if multiplier != 1:
        x = np.repeat(x, multiplier, axis=1)
    _, _, kh, kw = weight.shape
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    if dh != 1 or dw != 1 or sh != sw or sh not in (1, 2):
        return _depthwise_direct(_pad(x, pads), weight, sh, sw, dh, dw, oh, ow)
    s = sh
    reach = (kh - 1) // s + 1, (kw - 1) // s + 1
    rows, cols = oh + reach[0], ow + reach[1]  # one spare row absorbs the last tap's overrun
    planes = {(a, b): _phase_plane(x, pt, pl, s, a, b, rows, cols).reshape(n, c, rows * cols)
              for a in range(min(s, kh)) for b in range(min(s, kw))}
    size = oh * cols
    out = np.empty((n, c, 1, size), np.float32)
    taps = np.ascontiguousarray(weight[:, 0].reshape(c, 1, kh * kw))
    # Gather the kh*kw shifted runs of a few channels into one buffer, then one
    # small matmul per channel does all the multiply-adds: fewer memory passes
    # than kh*kw separate multiply and add sweeps.
    block = max(1, DEPTHWISE_BLOCK_BYTES // (4 * kh * kw * size))
    buf = np.empty((block, kh * kw, size), np.float32)
    for b in range(n):
        for c0 in range(0, c, block):
            c1 = min(c, c0 + block)
            part = buf[: c1 - c0]
            for t in range(kh * kw):
                i, j = divmod(t, kw)
                off = (i // s) * cols + j // s
                part[:, t] = planes[i % s, j % s][b, c0:c1, off:off + size]
            np.matmul(taps[c0:c1], part, out=out[b, c0:c1])
    return np.ascontiguousarray(out.reshape(n, c, oh, cols)[..., :ow])


def _phase_plane(x, pt: int, pl: int, s: int, a: int, b: int, rows: int, cols: int) -> np.ndarray:
    """Rows a, a+s, ... and columns b, b+s, ... of x zero-padded by (pt, pl), as a (rows, cols) plane."""
    n, c, h, w = x.shape
    plane = np.zeros((n, c, rows, cols), np.float32)
    k0, k1 = max(0, -((a - pt) // s)), min(rows, (h - 1 + pt - a) // s + 1)
    j0, j1 = max(0, -((b - pl) // s)), min(cols, (w - 1 + pl - b) // s + 1)
    if k1 > k0 and j1 > j0:
        plane[:, :, k0:k1, j0:j1] = x[:, :, a + s * k0 - pt: a + s * (k1 - 1) - pt + 1: s,
                                      b + s * j0 - pl: b + s * (j1 - 1) - pl + 1: s]
    return plane


def _depthwise_direct(x, weight, sh, sw, dh, dw, oh, ow) -> np.ndarray:
    c = x.shape[1]
    _, _, kh, kw = weight.shape
    out = np.zeros((x.shape[0], c, oh, ow), np.float32)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            out += patch * weight[:, 0, i, j].reshape(1, -1, 1, 1)
    return out


def conv_transpose2d(x, weight, bias, strides, pads, dilations, groups, output_hw=None) -> np.ndarray:
    """Transposed convolution; weight is (C_in, O/groups, kh, kw) as Core ML stores it."""
    if groups != 1:
        raise NotImplementedError("grouped conv_transpose")
    n, c, h, w = x.shape
    _, o, kh, kw = weight.shape
    sh, sw = strides
    dh, dw = dilations
    full_h, full_w = (h - 1) * sh + (kh - 1) * dh + 1, (w - 1) * sw + (kw - 1) * dw + 1
    out = np.zeros((n, o, full_h, full_w), np.float32)
    cols = np.tensordot(x, weight, axes=([1], [0]))  # (n, h, w, o, kh, kw)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh: i * dh + sh * (h - 1) + 1: sh, j * dw: j * dw + sw * (w - 1) + 1: sw] += \
                cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    (pt, pb), (pl, pr) = pads
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


def pool2d(x, kind: str, kernel, strides, pads, exclude_padding: bool, ceil_mode: bool = False) -> np.ndarray:
    kh, kw = kernel
    sh, sw = strides
    if ceil_mode:
        pads = [(a, b + s - 1) for (a, b), s in zip(pads, strides)]
    if kind == "max":
        xp = _pad(x, pads, -np.inf)
        return _windows(np.ascontiguousarray(xp), kh, kw, sh, sw, 1, 1).max(axis=(2, 3))
    xp = _pad(x, pads, 0.0)
    total = _windows(np.ascontiguousarray(xp), kh, kw, sh, sw, 1, 1).sum(axis=(2, 3), dtype=np.float32)
    if exclude_padding and any(a or b for a, b in pads):
        ones = _pad(np.ones((1, 1, *x.shape[2:]), np.float32), pads, 0.0)
        count = _windows(ones, kh, kw, sh, sw, 1, 1).sum(axis=(2, 3))
        return total / count
    return total / np.float32(kh * kw)


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
