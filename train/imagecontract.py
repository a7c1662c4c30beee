"""The pixel contract: how an image file becomes the RGB pixels at the model's size.

The same steps, with the same integer arithmetic, are implemented in Kotlin
(android_demo ImageContract.kt) and Swift (ios_demo ImageContract.swift); golden
vectors (golden/preprocessing, `python -m mobilepack.golden`) hold them together.

1. decode: to 8-bit RGBA, straight (not premultiplied) alpha. 16-bit samples keep their
   high byte (v >> 8), as libpng's strip_16 and Pillow's 16-bit RGB reading do; grayscale is
   copied into R, G and B; a palette is expanded through its table (and tRNS alpha).
2. EXIF orientation (tag 0x0112, 1-8) is applied, so the pixels are upright as a viewer shows them;
   damaged EXIF or a value outside 1-8 leaves the pixels as stored.
3. alpha is composited on white: c' = (c*a + 255*(255-a) + 127) // 255, as most viewers show it.
4. resize to the model's size with Pillow's convolution resampler, reimplemented here:
   separable, horizontal pass then vertical (the order Pillow's Resample.c has; Pillow 13 may
   swap it when both axes shrink, a few LSB apart, so the order is fixed here), each rounded to 8 bits; pixel centres at i + 0.5;
   the filter (triangle for bilinear, a=-0.5 cubic for bicubic) is widened by the scale when
   downscaling, so it antialiases; weights are normalised to sum 1 and quantised to 22-bit fixed
   point, the sum rounded half up and clamped to 0-255. Chosen because it is what training has
   always used (Pillow BILINEAR): keeping it bit-exact leaves every trained model and accuracy
   figure valid, and antialiasing matters when a 12-megapixel photo shrinks to 224 or 32 pixels.
   nearest takes the source pixel floor(0.5*s + i*s), s = in/out accumulated as Pillow does.
5. crop: none; the whole image is resized to the model's size (aspect ratio not kept).
6. normalise: inside the model (Preprocessing.mean/std); apps feed these 0-255 RGB values.
"""

from __future__ import annotations

import io
import math
import struct
import warnings

import numpy as np

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling: 32 - 8 - 2
BACKGROUND = (255, 255, 255)
TOLERANCE_LSB = 1  # what an app may differ by; the Kotlin golden test measures the real figure
CONTRACT = {
    "decode": "8-bit RGBA, straight alpha; 16-bit samples keep the high byte (v >> 8); gray copied to RGB; "
              "palette expanded with its tRNS alpha",
    "exif_orientation": "applied (tag 0x0112, values 1-8); damaged EXIF or other values: as stored",
    "alpha_background": list(BACKGROUND),
    "alpha_rounding": "(c*a + bg*(255-a) + 127) // 255",
    "resize": {"bilinear": "triangle filter", "bicubic": "cubic a=-0.5", "nearest": "floor(0.5*s + i*s)",
               "antialias": True, "pixel_centre": "i + 0.5", "order": "horizontal then vertical, 8-bit between",
               "fixed_point_bits": PRECISION_BITS, "rounding": "half up, clamped to 0-255"},
    "crop": "none",
    "normalise": "in the model (mean/std); apps feed 0-255 RGB",
    "tolerance_lsb": TOLERANCE_LSB,
    "golden": "golden/preprocessing (python -m mobilepack.golden)",
}
_ORIENTATION_TAG = 0x0112


def decode(source) -> tuple[np.ndarray, int]:
    """A path, bytes or file object -> (uint8 HxWx4 straight RGBA, EXIF orientation 1-8)."""
    from PIL import Image

    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    with Image.open(source) as im:
        im.load()
        return _rgba8(im), _orientation(im)


def _orientation(im) -> int:
    """EXIF orientation 1-8; damaged or missing EXIF means the pixels as stored (1), as the apps do."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns "Corrupt EXIF data" and skips the entry
            value = im.getexif().get(_ORIENTATION_TAG, 1)
    except (SyntaxError, ValueError, TypeError, OSError, struct.error):
        return 1
    return value if value in range(1, 9) else 1


def _rgba8(im) -> np.ndarray:
    mode = im.mode
    if mode.startswith("I;16") or (mode == "I" and im.format == "PNG"):  # 16-bit gray: keep the high byte
        gray = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
        alpha = None
    elif mode in ("L", "LA"):
        a = np.asarray(im)
        gray, alpha = (a, None) if mode == "L" else (a[..., 0], a[..., 1])
    elif mode in ("RGB", "RGBA"):
        a = np.asarray(im)
        return np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]) if mode == "RGB" else a.copy()
    else:  # palette (with its tRNS), 1-bit, CMYK: a table lookup or Pillow's own conversion
        return np.asarray(im.convert("RGBA")).copy()
    alpha = np.full(gray.shape, 255, np.uint8) if alpha is None else alpha
    return np.dstack([gray, gray, gray, alpha])


def source_index(orientation: int, width: int, height: int, x, y):
    """For output pixel (x, y) of an image oriented from a width x height source: the source (sx, sy)."""
    w1, h1 = width - 1, height - 1
    return {1: (x, y), 2: (w1 - x, y), 3: (w1 - x, h1 - y), 4: (x, h1 - y),
            5: (y, x), 6: (y, h1 - x), 7: (w1 - y, h1 - x), 8: (w1 - y, x)}[orientation]


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1-8 (5-8 swap width and height)."""
    h, w = pixels.shape[:2]
    oh, ow = (w, h) if orientation >= 5 else (h, w)
    y, x = np.mgrid[0:oh, 0:ow]
    sx, sy = source_index(orientation, w, h, x, y)
    return pixels[sy, sx]


def composite(rgba: np.ndarray, background=BACKGROUND) -> np.ndarray:
    """Straight RGBA -> RGB over `background`, rounded to nearest in integers."""
    c = rgba[..., :3].astype(np.int32)
    a = rgba[..., 3:4].astype(np.int32)
    bg = np.asarray(background, np.int32)
    return ((c * a + bg * (255 - a) + 127) // 255).astype(np.uint8)


def _triangle(x: float) -> float:
    x = -x if x < 0.0 else x
    return 1.0 - x if x < 1.0 else 0.0


def _cubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


_FILTERS = {"bilinear": (_triangle, 1.0), "bicubic": (_cubic, 2.0)}


def coefficients(in_size: int, out_size: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel: the first source index and the fixed-point weights (padded with zeros).

    Scalar Python floats in the order Pillow's precompute_coeffs uses, so Kotlin and Swift
    doubles reproduce every weight bit for bit."""
    filt, support = _FILTERS[method]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    starts = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, ksize), np.int64)
    ss = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [filt((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:
            ww += w
        k = [w / ww for w in k] if ww != 0.0 else k
        starts[xx] = xmin
        weights[xx, :xmax] = [int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else
                              int(0.5 + w * (1 << PRECISION_BITS)) for w in k]
    return starts, weights


def _pass(pixels: np.ndarray, out_size: int, axis: int, method: str) -> np.ndarray:
    """Resample uint8 `pixels` along `axis` (1 = horizontal, 0 = vertical) to out_size."""
    in_size = pixels.shape[axis]
    starts, weights = coefficients(in_size, out_size, method)
    shape = [1] * pixels.ndim
    shape[axis] = out_size
    # int32 as Pillow: 255 * (sum of |weights| <= 1.25 * 2**22) stays below 2**31. Gathering one tap at a
    # time keeps every temporary at the output's size, not the photo's.
    acc = np.full(pixels.shape[:axis] + (out_size,) + pixels.shape[axis + 1:], 1 << (PRECISION_BITS - 1), np.int32)
    for k in range(weights.shape[1]):
        idx = np.minimum(starts + k, in_size - 1)  # zero weights past the window read a harmless pixel
        acc += np.take(pixels, idx, axis=axis).astype(np.int32) * weights[:, k].astype(np.int32).reshape(shape)
    return np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)


def _nearest_index(in_size: int, out_size: int) -> np.ndarray:
    step = in_size / out_size
    pos, idx = step * 0.5, []
    for _ in range(out_size):  # accumulated as Pillow's ImagingScaleAffine does, not i * step
        idx.append(min(int(pos), in_size - 1))
        pos += step
    return np.array(idx, np.int64)


def resample(pixels: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """uint8 HxWxC -> size (height, width) by the contract's resampler."""
    h, w = size
    if method == "nearest":
        return pixels[_nearest_index(pixels.shape[0], h)][:, _nearest_index(pixels.shape[1], w)]
    out = pixels
    if w != pixels.shape[1]:
        out = _pass(out, w, 1, method)
    if h != pixels.shape[0]:
        out = _pass(out, h, 0, method)
    return out


def upright_rgb(source) -> np.ndarray:
    """Steps 1-3: an image file -> uint8 HxWx3 RGB, upright, alpha composited on white."""
    rgba, orientation = decode(source)
    return composite(orient(rgba, orientation))


def prepare(source, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """Steps 1-5: an image file -> uint8 RGB at the model's size (height, width)."""
    return resample(upright_rgb(source), size, method)

