"""The one description of how raw pixels become model input.

Training, int8 calibration, the benchmarks, Core ML's ImageType scale/bias,
TFLite metadata and the demo apps all derive from this object. Normalization
is baked into the model (a Rescaling layer), so `mean`/`std` record what the
model does internally and apps feed raw RGB pixels 0-255.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.documents import NUMBER, Array, check_document, read_json
from train.errors import DataError, MobilepackError, PreprocessingError
from train.imagecontract import CONTRACT, resample, upright_rgb

SCHEMA_VERSION = 1
_RESIZE = ("bilinear", "nearest", "bicubic")  # the contract's resamplers (train/imagecontract.py)
# What preprocessing.json (and a manifest's "preprocessing") must hold; values are checked by __post_init__.
SPEC = {"image_size": Array(int, length=2), "channels": int, "channel_order": str, "layout": str, "resize": str,
        "input_dtype": str, "value_range": Array(NUMBER, length=2), "normalization_in_model": bool,
        "mean": [NUMBER], "std": [NUMBER], "schema_version": int}
REGENERATE = "regenerate it with `mobilepack train`"


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's input tensor.

    image_size is (height, width). The model input is `layout` float32 in
    `value_range`; inside the model x_norm = (x - mean) / std per channel.
    """

    image_size: tuple[int, int]
    channels: int = 3
    channel_order: str = "RGB"
    layout: str = "NHWC"
    resize: str = "bilinear"
    input_dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 255.0)
    normalization_in_model: bool = True
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (255.0, 255.0, 255.0)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.resize not in _RESIZE:
            raise PreprocessingError(f"resize {self.resize!r} is not one of {sorted(_RESIZE)}")
        if self.channel_order not in ("RGB", "BGR"):
            raise PreprocessingError(f"channel_order {self.channel_order!r} must be RGB or BGR")
        if self.layout not in ("NHWC", "NCHW"):
            raise PreprocessingError(f"layout {self.layout!r} must be NHWC or NCHW")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise PreprocessingError(f"mean and std need {self.channels} values each")
        if min(self.image_size) < 1 or self.channels < 1:
            raise PreprocessingError(f"image_size {list(self.image_size)} and channels {self.channels} must be >= 1")
        if 0 in self.std:  # the model divides by std; Core ML's scale is 1/std
            raise PreprocessingError(f"std {list(self.std)} holds a 0")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w = self.image_size
        if self.layout == "NHWC":
            return (h, w, self.channels)
        return (self.channels, h, w)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        # The pixel contract rides along so apps and readers of the manifest see the exact steps.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()} | {"contract": CONTRACT}

    @classmethod
    def from_dict(cls, d: dict, source: str = "preprocessing", fix: str = REGENERATE,
                  error: type[MobilepackError] = PreprocessingError) -> "Preprocessing":
        """From a parsed preprocessing.json (or a manifest's copy at `source`); any fault is `error`."""
        check_document(d, SPEC, source, fix, SCHEMA_VERSION, error)
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in SPEC}
        try:
            return cls(**kw)
        except PreprocessingError as exc:
            raise error(f"{source}: {exc}; {fix}") from None

    def save(self, path: Path) -> None:
        from train.fsutil import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "Preprocessing":
        """A run dir's preprocessing.json."""
        fix = f"regenerate it with `mobilepack train --out {Path(path).parent}`"
        return cls.from_dict(read_json(path, fix, PreprocessingError), str(path), fix)

    def resized(self, image: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 RGB image of any size -> the same at the model's size (RGB, HWC, not normalized)."""
        h, w = self.image_size
        if image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"expected an HxWx3 RGB image, got shape {image.shape}")
        if image.shape[:2] != (h, w):  # the contract's resampler, which the apps reproduce bit for bit
            image = resample(np.ascontiguousarray(image, dtype=np.uint8), (h, w), self.resize)
        return np.asarray(image)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 RGB image of any size -> float32 model input (no batch)."""
        x = self.resized(image).astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        if self.layout == "NCHW":
            x = np.transpose(x, (2, 0, 1))
        return np.ascontiguousarray(x)

    def apply_batch(self, images) -> np.ndarray:
        return np.stack([self.apply(im) for im in images]) if len(images) else np.zeros(
            (0, *self.input_shape), np.float32
        )


def read_rgb_image(path: Path) -> np.ndarray:
    """Read any Pillow-readable image as upright uint8 RGB by the pixel contract (train/imagecontract.py):
    16-bit, grayscale, palette and CMYK converted, EXIF orientation applied, alpha composited on white."""
    return upright_rgb(path)
