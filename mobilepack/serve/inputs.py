"""What `POST /predict` accepts: a JSON tensor or an uploaded image, checked before any work is done.

Every refusal is a `BadRequest` (a 4xx and one line saying what is wrong and what to send instead).
Images are checked from their header, which Pillow reads without decoding, so an image too large
to decode is refused before a single pixel is allocated.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from train.preprocessing import Preprocessing

# 2048 x 2048: the model sees at most a few hundred pixels a side, and each worker thread decodes
# its own upload, so the cap bounds memory at workers x max_pixels x 4 bytes (RGBA) at worst.
MAX_PIXELS = 2048 * 2048
# A panorama is ~4:1; past 20:1 resizing to the model's square input leaves nothing recognisable.
MAX_ASPECT = 20.0
# Decoders Pillow runs in pure Pillow code; never EPS (it runs Ghostscript) or a rarely used plugin.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
FLOAT32_MAX = float(np.finfo(np.float32).max)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = MAX_PIXELS
    max_aspect: float = MAX_ASPECT


def json_body(data: bytes):
    """The parsed body, or a 400. Parsed here because Flask's parser lets RecursionError through (a 500)."""
    if not data:
        raise BadRequest(400, 'body is empty; send JSON {"input": [...]} or a multipart upload field named \'image\'')
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise BadRequest(400, "body is not valid JSON; send {\"input\": [...]} with Content-Type "
                              "application/json, or a multipart upload field named 'image'") from None


def tensor_from_json(payload, shape: tuple[int, ...], value_range: tuple[float, float], dtype: str = "float32",
                     key: str = "input") -> np.ndarray:
    """{"input": [...]} -> a batch of one (float32, or `dtype` for ids), or a BadRequest saying what is wrong.

    `key` names the value in the messages ("input", or an input's name within "inputs"); an integer
    `dtype` (token ids) takes whole numbers only."""
    if not isinstance(payload, dict) or "input" not in payload:
        raise BadRequest(400, 'JSON body must be an object with "input": a nested list in the model\'s input '
                              f"shape {list(shape)}")
    got = _nested_shape(payload["input"], key, len(shape) + 1)
    if got not in (shape, (1, *shape)):
        raise BadRequest(400, f'"{key}" has shape {list(got)}; the model takes {list(shape)} (or [1, ...])')
    try:
        x = np.asarray(payload["input"], dtype=np.float64).reshape(1, *shape)
    except OverflowError:  # a JSON integer too large for a float
        x = np.array([np.inf])
    if not np.all(np.isfinite(x)):
        raise BadRequest(400, f'"{key}" holds NaN or infinity, or a number too large for a float')
    lo, hi = value_range
    if x.min() < lo or x.max() > hi:
        raise BadRequest(400, f'"{key}" values must lie in [{lo:g}, {hi:g}] (the model\'s input range); '
                              f"got {x.min():g} to {x.max():g}")
    if np.dtype(dtype).kind in "iu":  # ids: whole numbers, cast straight from float64 (exact to 2^53)
        if not np.all(x == np.rint(x)):
            raise BadRequest(400, f'"{key}" takes whole numbers ({dtype} ids or indices); got a fraction')
        return x.astype(dtype)
    return x.astype(np.float32)


@dataclass(frozen=True)
class InputSpec:
    """One model input as /predict takes it: its name, shape without the batch, dtype and allowed values."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    value_range: tuple[float, float] = (-FLOAT32_MAX, FLOAT32_MAX)


def tensors_from_json(payload, specs: list[InputSpec]) -> list[np.ndarray]:
    """{"inputs": {NAME: [...], ...}} (any model) or {"input": [...]} (one input) -> a batch of one per input."""
    if len(specs) == 1 and not (isinstance(payload, dict) and "inputs" in payload):
        spec = specs[0]
        return [tensor_from_json(payload, spec.shape, spec.value_range, spec.dtype)]
    example = ", ".join(f'"{s.name}": [...]' for s in specs)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), dict):
        single = f'"input": a nested list of shape {list(specs[0].shape)}, or ' if len(specs) == 1 else ""
        raise BadRequest(400, f'JSON body must be an object with {single}"inputs": {{{example}}}, one nested list '
                              "per model input, by name")
    given = payload["inputs"]
    unknown = sorted(set(given) - {s.name for s in specs})
    missing = [s.name for s in specs if s.name not in given]
    if unknown or missing:
        raise BadRequest(400, f'"inputs" needs exactly {", ".join(s.name for s in specs)}; '
                              + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                        unknown and f"unknown {', '.join(map(repr, unknown))}"])))
    return [tensor_from_json({"input": given[s.name]}, s.shape, s.value_range, s.dtype, s.name) for s in specs]


def _nested_shape(value, where: str, depth_left: int) -> tuple[int, ...]:
    """The shape of a rectangular nested list of numbers, or a BadRequest naming the first bad element."""
    if isinstance(value, list):
        if depth_left == 0:
            raise BadRequest(400, f'"input" is nested deeper than the model\'s input ({where} is a list)')
        if not value:
            return (0,)
        shapes = {_nested_shape(v, f"{where}[{i}]", depth_left - 1) for i, v in enumerate(value)}
        if len(shapes) > 1:
            raise BadRequest(400, f'"input" is ragged at {where}; give a nested list of one shape')
        return (len(value), *shapes.pop())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a boolean" if isinstance(value, bool) else f"a {type(value).__name__}".replace("NoneType", "null")
        raise BadRequest(400, f'"input" must hold numbers only; {where} is {kind}')
    return ()


def tensor_from_image(data: bytes, prep: Preprocessing | None, limits: ImageLimits) -> np.ndarray:
    """An uploaded image -> the model input, preprocessed exactly as `mobilepack bench` does."""
    from PIL import Image

    from train.preprocessing import read_rgb_image

    if prep is None:
        raise BadRequest(400, "this model's inputs are not images; POST JSON {\"input\": [...]} instead")
    if not data:
        raise BadRequest(400, "the upload 'image' is empty; attach an image file")
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as probe:  # lazy: reads the header only
            check_header(probe, limits)
            probe.verify()
        image = read_rgb_image(io.BytesIO(data))
    except BadRequest:
        raise
    except Image.DecompressionBombError:  # over Pillow's own hard limit, refused by Image.open itself
        raise BadRequest(413, f"image over Pillow's decompression-bomb limit; this server decodes at most "
                              f"{limits.max_pixels} pixels (--max-pixels)") from None
    except Exception:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, struct.error, ... on damaged files
        raise BadRequest(400, "the upload is not an image this server reads ("
                              f"{', '.join(f.lower() for f in IMAGE_FORMATS)}), or it is damaged") from None
    return prep.apply_batch([image])


def check_header(probe, limits: ImageLimits) -> None:
    """Size, aspect ratio and frame count from the header, before anything is decoded."""
    w, h = probe.size
    if w * h > limits.max_pixels:
        raise BadRequest(413, f"image is {w}x{h} = {w * h} pixels; this server decodes at most "
                              f"{limits.max_pixels} (--max-pixels); downscale it first")
    if min(w, h) < 1 or max(w, h) > limits.max_aspect * min(w, h):
        raise BadRequest(400, f"image is {w}x{h}: aspect ratio over {limits.max_aspect:g}:1; crop it to the "
                              "subject first")
    # is_animated looks for a second frame only; n_frames would walk (and for GIF decode) every frame.
    # MPO is how many phones save a JPEG photo: the primary image first, then a preview or depth map.
    # Its first frame is the photo any viewer shows, and the one decoded here.
    if getattr(probe, "is_animated", False) and probe.format != "MPO":
        raise BadRequest(400, f"image is animated or has several frames ({probe.format}); send one still image")
