"""Depthwise convolution: shifted multiply-adds over flattened planes, a few planes at a time.

With a plane zero-padded and flattened, a tap is one contiguous run per channel (the row
wrap-around lands in columns that are cut off at the end); a stride-2 input is read as its
four phase planes (rows a, a+2, ... and columns b, b+2, ...). Each column shift of a few
planes is gathered once, straight from the input, as a run long enough for every row shift;
then per row shift one small matmul per plane over a strided view of those runs does its
taps' multiply-adds. The bias and `post` (the fp16 rounding and the activation a program
fused into the conv) follow while the block is in cache, in the order the separate ops would
apply them. A plane's numbers do not depend on the block it falls in, so a batch gives the
bits of its samples run one by one.
"""

from __future__ import annotations

import numpy as np

from .workspace import empty, scratch

BLOCK_BYTES = 1 << 22  # one block's planes and runs: fewer, longer numpy calls beat an L2-sized block


def depthwise(x, weight, bias, geo, post=None) -> np.ndarray:
    """x (N, C, H, W); weight (C*m, 1, kh, kw) for channel multiplier m; geo a kernels.ConvGeometry;
    post(block) finishes a block of outputs in place, after the bias (None: nothing)."""
    multiplier = weight.shape[0] // x.shape[1]
    if multiplier != 1:
        x = np.repeat(x, multiplier, axis=1)
    _, _, kh, kw = weight.shape
    n, c, h, w = x.shape
    (sh, sw), (dh, dw) = geo.strides, geo.dilations
    (pt, pb), (pl, pr) = geo.pads
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    if dh != 1 or dw != 1 or sh != sw or sh not in (1, 2):
        return _direct(x, weight, bias, geo, (oh, ow), post)
    s = sh
    reach = (kh - 1) // s + 1, (kw - 1) // s + 1
    rows, cols = oh + reach[0], ow + reach[1]  # one spare row absorbs the last tap's overrun
    phases = [(a, b) for a in range(min(s, kh)) for b in range(min(s, kw))]
    sources, taps = _sources(np.tile(weight[:, 0], (n, 1, 1)), s)  # plane p is channel p % c
    size, length = oh * cols, (oh + reach[0] - 1) * cols
    block = max(1, BLOCK_BYTES // (4 * (len(phases) * rows * cols + len(sources) * length)))
    flat = scratch("depthwise planes", (len(phases), block, rows * cols))
    runs = scratch("depthwise runs", (block, len(sources), length))
    sums = scratch("depthwise sums", (block, 1, size))
    more = scratch("depthwise more", (block, 1, size))
    biases = np.tile(bias, n)[:, None, None] if bias is not None else None
    planes, result = x.reshape(n * c, h, w), empty((n, c, oh, ow))
    for p0 in range(0, n * c, block):
        p1 = min(n * c, p0 + block)
        for k, (a, b) in enumerate(phases):
            _gather(flat[k, : p1 - p0].reshape(-1, rows, cols), planes[p0:p1], a - pt, b - pl, s)
        part = runs[: p1 - p0]
        for k, (a, b, q) in enumerate(sources):
            part[:, k] = flat[phases.index((a, b)), : p1 - p0, q:q + length]
        acc = sums[: p1 - p0]
        for r, t in enumerate(taps):
            dest = acc if r == 0 else more[: p1 - p0]
            np.matmul(t[p0:p1], part[:, : t.shape[2], r * cols:r * cols + size], out=dest)
            if r:
                acc += dest
        out, strip = result.reshape(n * c, oh, ow)[p0:p1], acc.reshape(-1, oh, cols)[:, :, :ow]
        if biases is not None:
            np.add(strip, biases[p0:p1], out=out)  # the bias, added as the valid columns are copied out
        else:
            np.copyto(out, strip)
        if post is not None:
            post(out)
    return result


def _sources(w, s: int):
    """The runs to gather, (phase row a, phase column b, column shift q), ordered by a, and per row
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


def _gather(dest, planes, top: int, left: int, s: int) -> None:
    """dest[:, i, j] = planes[:, top + s*i, left + s*j] where that is inside the planes, else 0."""
    _, rows, cols = dest.shape
    h, w = planes.shape[1:]
    i0, i1 = max(0, -(top // s)), min(rows, (h - 1 - top) // s + 1)
    j0, j1 = max(0, -(left // s)), min(cols, (w - 1 - left) // s + 1)
    if i1 <= i0 or j1 <= j0 or i0 or j0 or i1 < rows or j1 < cols:
        dest[...] = 0  # a block's planes are in cache: one fill is cheaper than four border strips
    if i1 > i0 and j1 > j0:
        dest[:, i0:i1, j0:j1] = planes[:, top + s * i0: top + s * (i1 - 1) + 1: s, left + s * j0: left + s * (j1 - 1) + 1: s]


def _direct(x, weight, bias, geo, out_hw, post) -> np.ndarray:
    """Any stride and dilation: the textbook sum over the taps, then the bias and post."""
    from .kernels import pad_planes

    (sh, sw), (dh, dw), (oh, ow) = geo.strides, geo.dilations, out_hw
    x = pad_planes(x, geo.pads)
    c = x.shape[1]
    _, _, kh, kw = weight.shape
    out = empty((x.shape[0], c, oh, ow))
    out[...] = 0
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            out += patch * weight[:, 0, i, j].reshape(1, -1, 1, 1)
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    if post is not None:
        post(out)
    return out
