"""The depthwise kernel and the conv + activation fusion: against a plain loop, and fused against unfused, bit for bit."""

import numpy as np
import pytest

from benchmarks.coreml_reference import kernels as K
from benchmarks.coreml_reference.mil import round16
from benchmarks.coreml_reference.workspace import Workspace, using


def _textbook(x, w, b, geo):
    """Each tap's shifted product summed in float64: independent of the kernel's order and BLAS."""
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *geo.pads])
    m = w.shape[0] // x.shape[1]
    xp = np.repeat(xp, m, axis=1)
    (kh, kw), (sh, sw), (dh, dw) = w.shape[2:], geo.strides, geo.dilations
    oh, ow = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1, (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw] \
                * w[None, :, 0, i, j, None, None]
    return out + b[None, :, None, None]


GEOMETRIES = [  # size, stride, kernel, dilation, pads (same, valid, custom, asymmetric), channel multiplier
    (9, 1, 3, 1, ((1, 1), (1, 1)), 1), (10, 2, 3, 1, ((0, 1), (0, 1)), 1), (11, 2, 3, 1, ((1, 1), (1, 1)), 1),
    (7, 2, 5, 1, ((2, 2), (1, 2)), 1), (8, 1, 5, 1, ((2, 2), (2, 2)), 2), (6, 3, 3, 1, ((0, 0), (0, 0)), 1),
    (12, 1, 3, 2, ((2, 2), (2, 2)), 1), (13, 2, 3, 2, ((1, 2), (0, 3)), 1), (5, 2, 3, 1, ((3, 3), (0, 4)), 1),
    (16, 2, 4, 1, ((1, 2), (1, 2)), 1),
]


@pytest.mark.parametrize("size,stride,kernel,dilation,pads,mult", GEOMETRIES)
def test_depthwise_equals_the_textbook_sum(size, stride, kernel, dilation, pads, mult):
    rng = np.random.default_rng(size)
    x = rng.normal(size=(3, 5, size, size + 2)).astype(np.float32)
    w = rng.normal(size=(5 * mult, 1, kernel, kernel)).astype(np.float32)
    b = rng.normal(size=5 * mult).astype(np.float32)
    geo = K.ConvGeometry((stride, stride), pads, (dilation, dilation), groups=5)
    want = _textbook(x, w, b, geo)
    got = K.conv2d(x, w, b, geo)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with using(Workspace()):  # reused buffers, twice: the same bits
        again = [K.conv2d(x, w, b, geo) for _ in range(2)]
    np.testing.assert_array_equal(again[0], got)
    np.testing.assert_array_equal(again[1], got)
    one_by_one = np.concatenate([K.conv2d(x[i:i + 1], w, b, geo) for i in range(len(x))])
    np.testing.assert_array_equal(one_by_one, got)  # a batch gives its samples' bits


def test_depthwise_matches_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 14, 14)).astype(np.float32)
    w = rng.normal(size=(8, 1, 3, 3)).astype(np.float32)
    for stride, pads in ((1, ((1, 1), (1, 1))), (2, ((0, 1), (0, 1)))):
        got = K.conv2d(x, w, None, K.ConvGeometry((stride, stride), pads, (1, 1), groups=8))
        ref = tf.nn.depthwise_conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 0, 1), [1, stride, stride, 1], "SAME")
        np.testing.assert_allclose(got, np.asarray(ref).transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)


def _relu6(a):
    np.clip(a, np.float32(0), np.float32(6), out=a)


def _rounded_relu6(a):
    round16(a)
    _relu6(a)


@pytest.mark.parametrize("kernel,groups", [(3, 6), (1, 1), (3, 1)])  # depthwise, 1x1, im2col
@pytest.mark.parametrize("stride,pads", [(1, ((1, 1), (1, 1))), (2, ((0, 1), (0, 1)))])
def test_fused_activation_gives_the_separate_ops_bits(kernel, groups, stride, pads):
    """fp32: conv, then relu6. fp16 (gpu/ane): conv rounded to fp16, then relu6 (rounding first:
    relu6 of a rounded value is what the unfused program computes, -0.0 included)."""
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(2, 6, 9, 9)) * 4).astype(np.float32)
    w = rng.normal(size=(6, 6 // groups, kernel, kernel)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    if kernel == 1:
        stride, pads = 1, ((0, 0), (0, 0))
    geo = K.ConvGeometry((stride, stride), pads, (1, 1), groups=groups)
    plain = K.conv2d(x, w, b, geo)
    fp32, fp16 = plain.copy(), plain.astype(np.float16).astype(np.float32)
    _relu6(fp32)
    _relu6(fp16)
    assert (plain > 6).any() and (plain < 0).any()  # the clip is exercised at both ends
    for post, want in ((_relu6, fp32), (_rounded_relu6, fp16)):
        got = K.conv2d(x, w, b, geo, post)
        assert got.tobytes() == want.tobytes()


def _float32_fold(x, w, b, geo):
    """The sum the compiled loop promises: each product rounded to float32, added left to right in
    row-major tap order from the first product, then the bias (numpy rounds every op, fuses none)."""
    xp = np.pad(x, [(0, 0), (0, 0), *geo.pads])
    (kh, kw), (sh, sw), (dh, dw) = w.shape[2:], geo.strides, geo.dilations
    oh, ow = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1, (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            product = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw] \
                * w[None, :, 0, i, j, None, None]
            out = product if out is None else out + product
    return out + b[None, :, None, None] if b is not None else out


@pytest.mark.parametrize("size,stride,kernel,dilation,pads,mult", [g for g in GEOMETRIES if g[5] == 1])
def test_depthwise_is_the_float32_sum_in_tap_order(size, stride, kernel, dilation, pads, mult):
    """Bit for bit: no reassociation and no fused multiply-add, in the 3x3 loops (stride 1, 2) and the general one."""
    rng = np.random.default_rng(size + 100)
    x = rng.normal(size=(2, 4, size, size + 1)).astype(np.float32)
    w = rng.normal(size=(4, 1, kernel, kernel)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    geo = K.ConvGeometry((stride, stride), pads, (dilation, dilation), groups=4)
    for bias in (b, None):
        assert K.conv2d(x, w, bias, geo).tobytes() == _float32_fold(x, w, bias, geo).tobytes()


def test_no_bias_keeps_a_negative_zero():
    """A sum of -0.0 products is -0.0; with no bias nothing may be added to it (+0.0 would make it +0.0)."""
    x = np.full((1, 2, 5, 5), -0.0, np.float32)
    w = np.ones((2, 1, 3, 3), np.float32)
    for stride in (1, 2):
        out = K.conv2d(x, w, None, K.ConvGeometry((stride, stride), ((0, 0), (0, 0)), (1, 1), groups=2))
        assert np.signbit(out).all() and not out.any()
