"""Where a convolution or pooling window goes: shared by kernels.py and depthwise.py (a leaf module)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ConvGeometry:
    """Where a convolution or pooling window goes, per spatial axis (H, W).

    Both file formats describe a window by these four values; building them once
    at the call site keeps each kernel's argument list to what it computes with.
    Pooling uses only strides and pads.
    """

    strides: Sequence[int]
    pads: Sequence[tuple[int, int]]  # (before, after) per axis, already resolved from 'same' / 'valid'
    dilations: Sequence[int] = (1, 1)
    groups: int = 1
