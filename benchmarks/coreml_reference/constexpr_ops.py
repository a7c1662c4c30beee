"""The iOS 18 compressed-weight ops, as the MIL op definitions in coremltools specify them
(coremltools/converters/mil/mil/ops/defs/iOS18/compression.py).

Weights are expanded once, at load. `constexpr_lut_to_dense` has one name for two ops: the iOS 16 one
(attributes lut, indices packed into bytes, shape) and the iOS 18 one (inputs indices, already
unpacked from their uint1..uint8 storage, and a lut with one table per block). Values come in their
stored dtypes and the result keeps the op's declared one, so the expansion is bit for bit what
coremltools' own `decompress` gives.
"""

from __future__ import annotations

import numpy as np

from .errors import CoreMLFormatError
from .mil_ops import CONSTEXPR_OPS as IOS16_CONSTEXPR_OPS
from .mil_ops import lut_to_dense as lut_to_dense_ios16
from .mil_ops_tensor import sparse_to_dense


def _blocks(full: tuple[int, ...], per_block: tuple[int, ...], what: str) -> list[int]:
    """How many elements of `full` each entry of a per-block tensor covers, along each axis."""
    if len(full) != len(per_block) or any(p < 1 or f % p for f, p in zip(full, per_block)):
        raise CoreMLFormatError(f"{what}: shape {list(per_block)} does not tile the weight's shape {list(full)}")
    return [f // p for f, p in zip(full, per_block)]


def _spread(values: np.ndarray, sizes: list[int]) -> np.ndarray:
    """A per-block tensor with an axis of length 1 after each of its axes: it broadcasts over the blocks."""
    shape = [d for n in values.shape for d in (n, 1)]
    return values.reshape(shape) if len(sizes) else values


def blockwise_shift_scale(data, scale, offset=None):
    """constexpr_blockwise_shift_scale (iOS 18): scale * (data - offset), one scale (and offset) per block."""
    data, scale = np.asarray(data), np.asarray(scale)
    sizes = _blocks(data.shape, scale.shape, "constexpr_blockwise_shift_scale scale")
    # Axis pairs (blocks, elements of a block): each scale broadcasts over its own block.
    blocked = data.reshape([d for n, b in zip(scale.shape, sizes) for d in (n, b)]).astype(scale.dtype)
    if offset is not None:
        offset = np.asarray(offset)
        if offset.shape != scale.shape:
            raise CoreMLFormatError(f"constexpr_blockwise_shift_scale: offset shape {list(offset.shape)} is not "
                                    f"the scale's {list(scale.shape)}")
        blocked = blocked - _spread(offset, sizes)
    return (_spread(scale, sizes) * blocked).reshape(data.shape).astype(scale.dtype, copy=False)


def lut_to_dense_ios18(indices, lut, vector_axis=None):
    """constexpr_lut_to_dense (iOS 18): each index picks an entry (of VECTOR_SIZE values) from its block's table."""
    indices, lut = np.asarray(indices), np.asarray(lut)
    if lut.ndim != indices.ndim + 2:
        raise CoreMLFormatError(f"constexpr_lut_to_dense: lut of rank {lut.ndim} for indices of rank {indices.ndim}; "
                                "expected 2 more")
    sizes = _blocks(indices.shape, lut.shape[:-2], "constexpr_lut_to_dense lut")
    palette, vector = lut.shape[-2:]
    # The table of each element's block: block coordinates flattened in the lut's order.
    block = np.zeros(indices.shape, np.int64)
    for axis, (n, b) in enumerate(zip(indices.shape, sizes)):
        coord = (np.arange(n) // b).reshape([-1 if a == axis else 1 for a in range(indices.ndim)])
        block = block * lut.shape[axis] + coord
    picked = lut.reshape(-1, palette, vector)[block, indices.astype(np.int64)]  # indices.shape + (vector,)
    if vector == 1:
        return picked[..., 0]
    axis = int(np.asarray(vector_axis)) % indices.ndim
    picked = np.moveaxis(picked, -1, axis + 1)  # each vector's values follow its index along vector_axis
    shape = list(indices.shape)
    shape[axis] *= vector
    return picked.reshape(shape)


def lut_to_dense(**args):
    """Either constexpr_lut_to_dense: the iOS 16 op has a `shape`, the iOS 18 one does not."""
    if "shape" in args:
        return lut_to_dense_ios16(**args)
    return lut_to_dense_ios18(**args)


def lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """constexpr_lut_to_sparse (iOS 18): the lut applied to a sparse tensor's nonzero indices only.

    Two outputs, for a constexpr_sparse_to_dense to join: the mask (with vector palettization, each mask
    bit repeated VECTOR_SIZE times along vector_axis) and the values of its set bits in row-major order.
    """
    mask = np.asarray(indices_mask)
    dense = lut_to_dense_ios18(sparse_to_dense(indices_nonzero_data, mask), lut, vector_axis)
    if vector_axis is not None:
        mask = np.repeat(mask, np.asarray(lut).shape[-1], axis=int(np.asarray(vector_axis)))
    return mask, dense[mask != 0]


def sparse_blockwise_shift_scale(data_mask, nonzero_data, scale, offset=None):
    """constexpr_sparse_blockwise_shift_scale (iOS 18): constexpr_blockwise_shift_scale on a sparse tensor's
    nonzero data, each value taking the scale (and offset) of its block in the dense layout. Outputs the
    mask, unchanged, and the dequantized values of its set bits in row-major order."""
    mask = np.asarray(data_mask)
    dense = blockwise_shift_scale(sparse_to_dense(nonzero_data, mask), scale, offset)
    return mask, dense[mask != 0]


CONSTEXPR_OPS = {
    **IOS16_CONSTEXPR_OPS,
    "constexpr_lut_to_dense": lut_to_dense,
    "constexpr_blockwise_shift_scale": blockwise_shift_scale,
    "constexpr_lut_to_sparse": lut_to_sparse,
    "constexpr_sparse_blockwise_shift_scale": sparse_blockwise_shift_scale,
    "constexpr_sparse_to_dense": sparse_to_dense,
}
