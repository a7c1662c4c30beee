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


def _nearest(x, coords, axis: int, mode: str) -> np.ndarray:
    """DEFAULT takes the sample's floor (TensorFlow's legacy nearest); the other modes round half up."""
    idx = np.floor(coords if mode == "DEFAULT" else coords + 0.5)
    return np.take(x, np.clip(idx, 0, x.shape[axis] - 1).astype(np.int64), axis=axis)


def resize(x, sizes, mode: str, linear: bool = True) -> np.ndarray:
    """Resize the last len(sizes) axes of x to `sizes`."""
    out = x
    for k, size in enumerate(sizes):
        axis = x.ndim - len(sizes) + k
        coords = grid(mode, out.shape[axis], size)
        out = _interpolate(out, coords, axis) if linear else _nearest(out, coords, axis, mode)
    return out


def _upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
    h, w = (int(np.floor(d * float(_s(s)))) for d, s in zip(x.shape[-2:], (scale_factor_height, scale_factor_width)))
    align = bool(_s(align_corners))
    half = not align if half_pixel_centers is None else bool(_s(half_pixel_centers))
    return resize(x, (h, w), "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half else "DEFAULT")


def _upsample_nearest(x, scale_factor_height=1, scale_factor_width=1):
    h, w = (int(np.floor(d * float(_s(s)))) for d, s in zip(x.shape[-2:], (scale_factor_height, scale_factor_width)))
    return resize(x, (h, w), "DEFAULT", linear=False)


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

    Apple's op tests check ALIGN_CORNERS (TensorFlow's crop_and_resize); the others follow by analogy.
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


IMAGE_OPS = {
    "upsample_bilinear": _upsample_bilinear,
    "upsample_nearest_neighbor": _upsample_nearest,
    "resize_bilinear": lambda x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT": resize(
        x, (int(_s(target_size_height)), int(_s(target_size_width))), str(_s(sampling_mode))),
    "resize_nearest_neighbor": lambda x, target_size_height=1, target_size_width=1: resize(
        x, (int(_s(target_size_height)), int(_s(target_size_width))), "DEFAULT", linear=False),
    "resize": _resize_op,
    "crop_resize": _crop_resize,
}
