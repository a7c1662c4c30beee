"""Depthwise convolution: a compiled loop per plane, the taps summed in a fixed order.

numpy has no fast depthwise kernel: every formulation in numpy (shifted multiply-adds, phase
planes and a small matmul per plane) moved each plane through memory once per tap or per
gather, and took half the evaluator's time on MobileNetV2 (9.4 of 19 ms per 224-px image, one
thread; this loop takes 3.8).
This loop, compiled by numba, pads one plane at a time into a buffer that stays in cache and
sums each output's taps in row-major order, left to right, starting from the first product,
then adds the bias: the textbook sum in float32, one rounding per multiply and per add (numba
compiles without fast-math, so nothing is reassociated or fused into an FMA). A 3x3 window with
no dilation, by far the most common one, keeps the sum in registers; any other window adds its
taps into a row buffer, in the same order, so both give the same bits (tested). A plane's numbers
depend on nothing but that plane, so a batch gives the bits of its samples run one by one. The
compiled code goes to numba's cache next to this file (or the user's cache when that is not
writable): a process after the first loads it instead of compiling.

`post` (the fp16 rounding and the activation a program fused into the conv) runs on a block of
planes right after the loop made them, while they are in cache, as the separate ops would.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .geometry import ConvGeometry
from .workspace import empty

BLOCK_BYTES = 1 << 19  # output planes per compiled call: post() then finds them in L2


def depthwise(x, weight, bias, geo, post=None) -> np.ndarray:
    """x (N, C, H, W); weight (C*m, 1, kh, kw) for channel multiplier m; geo a geometry.ConvGeometry;
    post(block) finishes a block of outputs in place, after the bias (None: nothing)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (dh, dw) = geo.strides, geo.dilations
    (pt, pb), (pl, pr) = geo.pads
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    taps = np.ascontiguousarray(weight[:, 0], dtype=np.float32)
    # no bias adds -0.0, which leaves every float as it is (+0.0 would turn a -0.0 sum into +0.0)
    b = np.ascontiguousarray(bias, dtype=np.float32) if bias is not None else np.full(o, -0.0, np.float32)
    result = empty((n, o, oh, ow))
    planes, out = x.reshape(n * c, h, w), result.reshape(n * o, oh, ow)
    geometry = np.array([sh, sw, dh, dw, pt, pl, h + pt + pb, w + pl + pr], np.int64)
    block = max(1, BLOCK_BYTES // (4 * max(1, oh * ow)))
    for q0 in range(0, n * o, block):
        q1 = min(n * o, q0 + block)
        _planes(planes, taps, b, geometry, c, o // c, q0, out[q0:q1])
        if post is not None:
            post(out[q0:q1])
    return result


def load_compiled() -> None:
    """Load the compiled loop now (from numba's cache, or compile it): the first run pulls in LLVM,
    about 100 MiB of RSS that belong to the evaluator, not to a model. measure.py calls it before
    the baseline it subtracts from every Core ML row's memory."""
    ones = np.ones((1, 1, 3, 3), np.float32)
    depthwise(ones, ones, None, ConvGeometry((1, 1), ((1, 1), (1, 1))))


@njit(nogil=True, cache=True)
def _planes(planes, taps, bias, geometry, c, multiplier, q0, out):  # pragma: no cover (compiled)
    """out[k] = output plane q0 + k: sample q // o, channel q % o, which reads input channel (q % o) // m.

    A plane is padded into `phases`. For the general loop at a stride sw > 1 it is kept as its sw
    column phases (columns p, p + sw, ...), so that every tap reads a contiguous run: tap column b
    is phase (b*dw) % sw from (b*dw) // sw on.
    """
    sh, sw, dh, dw, pt, pl, hp, wp = geometry
    o = taps.shape[0]
    kh, kw = taps.shape[1], taps.shape[2]
    h, w = planes.shape[1], planes.shape[2]
    split = sw > 1 and not (kh == 3 and kw == 3 and dw == 1 and sw == 2)  # only _any_window reads phases
    parts = sw if split else 1
    phases = np.zeros((parts, hp, (wp + parts - 1) // parts), np.float32)  # its border stays zero: planes
    row = np.empty(out.shape[2], np.float32)                                # write only the inside
    for k in range(out.shape[0]):
        q = q0 + k
        channel = q % o
        src = planes[(q // o) * c + channel // multiplier]
        if not split:
            phases[0, pt:pt + h, pl:pl + w] = src
        else:
            for phase in range(sw):
                first = (phase - pl) % sw  # the first input column that lands in this phase
                column, count = (pl + first) // sw, (w - first + sw - 1) // sw
                for r in range(h):
                    dest, line = phases[phase, pt + r], src[r]
                    for t in range(count):
                        dest[column + t] = line[first + t * sw]
        add = bias[channel]
        if kh == 3 and kw == 3 and dw == 1 and sw == 1:
            _three_wide_s1(phases[0], taps[channel], add, sh, dh, out[k])
        elif kh == 3 and kw == 3 and dw == 1 and sw == 2:
            _three_wide_s2(phases[0], taps[channel], add, sh, dh, out[k])
        else:
            _any_window(phases, taps[channel], add, sh, sw, dh, dw, out[k], row)


def _three_wide(stride: int):
    """A 3-wide window's nine products, summed in registers in the textbook order, at one column stride.

    The stride is a constant of the compiled loop, so its reads are a few rows at fixed offsets:
    LLVM vectorizes those, and not a loop whose offsets it does not know (it would have to check
    more pairs of pointers for overlap than it will)."""
    @njit(nogil=True, cache=True, inline="always")
    def loop(padded, t, add, sh, dh, out):  # pragma: no cover (compiled)
        t00, t01, t02, t10, t11, t12, t20, t21, t22 = (t[0, 0], t[0, 1], t[0, 2], t[1, 0], t[1, 1], t[1, 2],
                                                       t[2, 0], t[2, 1], t[2, 2])
        for i in range(out.shape[0]):
            a, b, c, dest = padded[i * sh], padded[i * sh + dh], padded[i * sh + 2 * dh], out[i]
            for j in range(out.shape[1]):
                x = stride * j
                dest[j] = ((((((((t00 * a[x] + t01 * a[x + 1]) + t02 * a[x + 2]) + t10 * b[x]) + t11 * b[x + 1])
                             + t12 * b[x + 2]) + t20 * c[x]) + t21 * c[x + 1]) + t22 * c[x + 2]) + add
    return loop


_three_wide_s1, _three_wide_s2 = _three_wide(1), _three_wide(2)


@njit(nogil=True, cache=True, inline="always")
def _any_window(phases, t, add, sh, sw, dh, dw, out, row):  # pragma: no cover (compiled)
    """Any window: the products added into a row, tap by tap, in the same order."""
    kh, kw = t.shape
    for i in range(out.shape[0]):
        for a in range(kh):
            y = i * sh + a * dh
            for b in range(kw):
                weight, src = t[a, b], phases[(b * dw) % sw, y, (b * dw) // sw:]
                if a == 0 and b == 0:
                    for j in range(out.shape[1]):
                        row[j] = weight * src[j]
                else:
                    for j in range(out.shape[1]):
                        row[j] += weight * src[j]
        for j in range(out.shape[1]):
            out[i, j] = row[j] + add
