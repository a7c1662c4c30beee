"""ML Program resizing ops: upsample_*, resize_*, resize (iOS 17) and crop_resize.

They act on the last two axes of a tensor of rank >= 3 (the ops' own definition), placing
the output samples by the sampling modes of coremltools' resize_bilinear documentation
(mil/ops/defs/iOS15/image_resizing.py), which are checked by its own op tests.
"""

from __future__ import annotations

import numpy as np

from .mil_ops import _ints, _s


def grid(mode: str, n_in: int, n_out: int) -> np.ndarray:
    """Where each of n_out samples falls on the input axis [0, n_in - 1], before clamping."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            return np.array([(n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0])
        return i * (n_in - 1) / (n_out - 1)
    if mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        return 0.5 * delta + i * delta
    if mode == "UNALIGN_CORNERS":
        return (i + 0.5) * n_in / n_out - 0.5
    return i * n_in / n_out  # DEFAULT


def _interpolate(x, coords, axis: int) -> np.ndarray:
    """Linear interpolation of x along `axis` at the clamped coordinates."""
    n = x.shape[axis]
    src = np.clip(coords, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = -1
    frac = (src - lo).astype(np.float32).reshape(shape)
    return np.take(x, lo, axis=axis) * (np.float32(1) - frac) + np.take(x, hi, axis=axis) * frac


def _nearest(x, coords, axis: int) -> np.ndarray:
    idx = np.floor(coords + 0.5)  # the nearest input sample, halves up
    return np.take(x, np.clip(idx, 0, x.shape[axis] - 1).astype(np.int64), axis=axis)


def resize(x, sizes, mode: str, linear: bool = True, legacy_nearest: bool = False) -> np.ndarray:
    """Resize the last len(sizes) axes of x to `sizes`.

    Nearest neighbour rounds the sampling mode's grid point; for DEFAULT that is the pixel the
    output pixel's centre falls in (floor((i + 0.5) * n_in / n_out), TensorFlow 2's nearest), except
    for the iOS 15 upsample/resize_nearest_neighbor ops (legacy_nearest: floor(i * n_in / n_out)).
    """
    out = x
    for k, size in enumerate(sizes):
        axis = x.ndim - len(sizes) + k
        n_in = out.shape[axis]
        if linear:
            out = _interpolate(out, grid(mode, n_in, size), axis)
        elif mode == "DEFAULT":
            shift = 0.0 if legacy_nearest else 0.5
            idx = np.floor((np.arange(size) + shift) * n_in / size)
            out = np.take(out, np.clip(idx, 0, n_in - 1).astype(np.int64), axis=axis)
        else:
            out = _nearest(out, grid(mode, n_in, size), axis)
    return out


def _upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
    h, w = (int(np.floor(d * float(_s(s)))) for d, s in zip(x.shape[-2:], (scale_factor_height, scale_factor_width)))
    align = bool(_s(align_corners))
    half = not align if half_pixel_centers is None else bool(_s(half_pixel_centers))
    return resize(x, (h, w), "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half else "DEFAULT")


def _upsample_nearest(x, scale_factor_height=1, scale_factor_width=1):
    h, w = (int(np.floor(d * float(_s(s)))) for d, s in zip(x.shape[-2:], (scale_factor_height, scale_factor_width)))
    return resize(x, (h, w), "DEFAULT", linear=False, legacy_nearest=True)


def _resize_op(x, shape, resized_dims, interpolation_mode="LINEAR", sampling_mode="DEFAULT"):
    """iOS 17 resize: the last `resized_dims` entries of shape give the new sizes (0 keeps the axis)."""
    n = int(_s(resized_dims))
    wanted = _ints(shape)[len(_ints(shape)) - n:] if n else []
    sizes = [w if w else d for w, d in zip(wanted, x.shape[x.ndim - n:])]
    return resize(x, sizes, str(_s(sampling_mode)), str(_s(interpolation_mode)) == "LINEAR")


def _boxes_in_pixels(boxes, mode: str, normalized: bool, scale: float, hw) -> np.ndarray:
    """(N, 4) boxes as [y1, x1, y2, x2] in input pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if mode == "CORNERS_WIDTH_FIRST":
        b = b[:, [1, 0, 3, 2]]
    elif mode.startswith("CENTER_SIZE"):
        c = b if mode == "CENTER_SIZE_HEIGHT_FIRST" else b[:, [1, 0, 3, 2]]
        b = np.stack([c[:, 0] - c[:, 2] / 2, c[:, 1] - c[:, 3] / 2, c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2], 1)
    if normalized:
        b = b * np.array([hw[0] - 1, hw[1] - 1, hw[0] - 1, hw[1] - 1])
    return b * scale


def _box_grid(start, end, n: int, mode: str) -> np.ndarray:
    """n samples in a box: the box edges play the input grid's [0, n_in - 1] of resize's sampling modes.

    Sources: NeuralNetwork.proto's SamplingMode and CropResizeLayerParams (grid points sampled from the
    box's interval [0, X-1]); for ALIGN_CORNERS, TensorFlow's crop_and_resize, which coremltools'
    TensorFlow frontend converts to this op (a box whose end comes before its start samples it flipped,
    samples outside the image take the pad value); for OFFSET_CORNERS, the example of Apple's
    BNNSCropResize documentation. tests/test_coreml_optests.py checks the last two.
    """
    return start + np.sign(end - start or 1) * grid(mode, abs(end - start) + 1, n)


def _crop_one(image, box, size, mode, pad) -> np.ndarray:
    """One box of one (C, H, W) image; samples outside the image take `pad`."""
    ys, xs = _box_grid(box[0], box[2], size[0], mode), _box_grid(box[1], box[3], size[1], mode)
    out = resize_at(image, ys, xs)
    outside = ((ys < 0) | (ys > image.shape[-2] - 1))[:, None] | ((xs < 0) | (xs > image.shape[-1] - 1))[None, :]
    return np.where(outside, np.float32(pad), out)


def resize_at(image, ys, xs) -> np.ndarray:
    return _interpolate(_interpolate(image, ys, image.ndim - 2), xs, image.ndim - 1)


def _crop_resize(x, roi=None, target_height=1, target_width=1, normalized_coordinates=False, spatial_scale=1.0,
                 box_coordinate_mode="CORNERS_HEIGHT_FIRST", sampling_mode="DEFAULT", pad_value=0.0, boxes=None,
                 box_indices=None):
    """iOS 15/16: roi (N, 1, 4 or 5, 1, 1), output (N, B or 1, C, h, w); iOS 17: boxes (N, 4) and box_indices."""
    size, mode = (int(_s(target_height)), int(_s(target_width))), str(_s(sampling_mode))
    pixels = lambda b: _boxes_in_pixels(b, str(_s(box_coordinate_mode)), bool(_s(normalized_coordinates)),  # noqa: E731
                                        float(_s(spatial_scale)), x.shape[-2:])
    pad = float(_s(pad_value))
    if boxes is not None:  # iOS 17
        idx = _ints(box_indices) if box_indices is not None else list(range(len(boxes)))
        return np.stack([_crop_one(x[i], b, size, mode, pad) for i, b in zip(idx, pixels(boxes))])
    r = np.asarray(roi).reshape(roi.shape[0], -1)
    if r.shape[1] == 5:
        return np.stack([_crop_one(x[int(row[0])], b, size, mode, pad)[None]
                         for row, b in zip(r, pixels(r[:, 1:]))])
    return np.stack([np.stack([_crop_one(img, b, size, mode, pad) for img in x]) for b in pixels(r)])


def _to_pixels(c, n: int, mode: str, align: bool):
    """A coordinate of resample/affine in input pixels along an axis of size n."""
    if mode == "normalized_minus_one_to_one":
        return (c + 1) / 2 * (n - 1) if align else ((c + 1) * n - 1) / 2
    if mode == "normalized_zero_to_one":
        return c * (n - 1) if align else c * n - 0.5
    return c


def _fold(i, n: int, padding: str):
    """Integer positions mapped into [0, n) by the padding mode, and where they fell outside."""
    outside = (i < 0) | (i > n - 1)
    if padding == "border":
        i = np.clip(i, 0, n - 1)
    elif padding == "reflection":  # |1 2 3| -> 2 3 2 1 2 3 2 1
        period = max(2 * (n - 1), 1)
        i = np.mod(i, period)
        i = np.where(i > n - 1, period - i, i)
    elif padding == "symmetric":  # |1 2 3| -> 3 2 1 1 2 3 3 2 1
        i = np.mod(i, 2 * n)
        i = np.where(i > n - 1, 2 * n - 1 - i, i)
    return np.clip(i, 0, n - 1).astype(np.int64), outside & (padding == "constant")


def _sample(image, px, py, bilinear: bool, padding: str, pad_value: float):
    """(C, H, W) image sampled at pixel coordinates px, py (same shape): (C,) + px.shape."""
    h, w = image.shape[-2:]
    if not bilinear:
        (xi, xo), (yi, yo) = _fold(np.floor(px + 0.5), w, padding), _fold(np.floor(py + 0.5), h, padding)
        return np.where(xo | yo, np.float32(pad_value), image[:, yi, xi])
    x0, y0 = np.floor(px), np.floor(py)
    fx, fy = (px - x0).astype(np.float32), (py - y0).astype(np.float32)
    out = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            (xi, xo), (yi, yo) = _fold(x0 + dx, w, padding), _fold(y0 + dy, h, padding)
            out = out + np.where(xo | yo, np.float32(pad_value), image[:, yi, xi]) * (wx * wy)
    return out


def _resample(x, coordinates, sampling_mode="bilinear", padding_mode="constant", padding_value=0.0,
              coordinates_mode="unnormalized", align_corners=False):
    mode, align = str(_s(coordinates_mode)), bool(_s(align_corners))
    bilinear, padding = str(_s(sampling_mode)) == "bilinear", str(_s(padding_mode))
    h, w = x.shape[-2:]
    c = np.asarray(coordinates, np.float64)
    return np.stack([_sample(x[b], _to_pixels(c[b, ..., 0], w, mode, align), _to_pixels(c[b, ..., 1], h, mode, align),
                             bilinear, padding, float(_s(padding_value))) for b in range(x.shape[0])])


def _affine(x, transform_matrix, output_height, output_width, sampling_mode="bilinear", padding_mode="constant",
            padding_value=0.0, coordinates_mode="normalized_minus_one_to_one", align_corners=True):
    """Output pixel (x, y), in the coordinates mode's units, samples the input at the transformed point."""
    oh, ow = int(_s(output_height)), int(_s(output_width))
    mode, align = str(_s(coordinates_mode)), bool(_s(align_corners))
    ys = np.linspace(-1, 1, oh) if mode == "normalized_minus_one_to_one" else np.arange(oh, dtype=np.float64)
    xs = np.linspace(-1, 1, ow) if mode == "normalized_minus_one_to_one" else np.arange(ow, dtype=np.float64)
    gx, gy = np.meshgrid(xs, ys)
    m = np.asarray(transform_matrix, np.float64).reshape(-1, 6)
    coords = np.stack([np.stack([a[0] * gx + a[1] * gy + a[2], a[3] * gx + a[4] * gy + a[5]], -1)
                       for a in (m[b % len(m)] for b in range(x.shape[0]))])
    return _resample(x, coords, sampling_mode, padding_mode, padding_value, mode, align)


IMAGE_OPS = {
    "resample": _resample,
    "affine": _affine,
    "upsample_bilinear": _upsample_bilinear,
    "upsample_nearest_neighbor": _upsample_nearest,
    "resize_bilinear": lambda x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT": resize(
        x, (int(_s(target_size_height)), int(_s(target_size_width))), str(_s(sampling_mode))),
    "resize_nearest_neighbor": lambda x, target_size_height=1, target_size_width=1: resize(
        x, (int(_s(target_size_height)), int(_s(target_size_width))), "DEFAULT", linear=False, legacy_nearest=True),
    "resize": _resize_op,
    "crop_resize": _crop_resize,
}
