"""MIL constant values: immediate values in the protobuf and weights in the blob file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import CoreMLFormatError

# MIL DataType enum -> numpy dtype (sub-byte types are unpacked by the blob reader).
NP_DTYPES = {1: np.bool_, 2: np.str_, 10: np.float16, 11: np.float32, 12: np.float64, 21: np.int8,
             22: np.int16, 23: np.int32, 24: np.int64, 25: np.int8, 31: np.uint8, 32: np.uint16,
             33: np.uint32, 34: np.uint64, 35: np.uint8, 36: np.uint8, 37: np.uint8, 38: np.uint8, 39: np.uint8}
FLOAT16, FLOAT32 = 10, 11
_READERS = {10: "read_fp16_data", 11: "read_float_data", 21: "read_int8_data", 22: "read_int16_data",
            23: "read_int32_data", 25: "read_int4_data", 31: "read_uint8_data", 32: "read_uint16_data",
            33: "read_uint32_data", 35: "read_uint4_data", 36: "read_uint2_data", 37: "read_uint1_data",
            38: "read_uint6_data", 39: "read_uint3_data"}


class BlobFile:
    """Weights of an .mlpackage, read with coremltools' own blob storage reader."""

    def __init__(self, weights_dir: Path | None):
        self.weights_dir = weights_dir
        self._readers: dict[str, object] = {}

    def read(self, file_name: str, offset: int, dtype: int) -> np.ndarray:
        from coremltools.libmilstoragepython import _BlobStorageReader

        if self.weights_dir is None:
            raise CoreMLFormatError("the model refers to a weight file but has no weights folder")
        name = file_name.split("/")[-1]
        path = self.weights_dir / name
        if not path.is_file():
            raise CoreMLFormatError(f"weight file {name} is missing from the package (truncated .mlpackage?)")
        reader = self._readers.get(name) or self._readers.setdefault(name, _BlobStorageReader(str(path)))
        method = _READERS.get(dtype)
        if method is None:
            raise CoreMLFormatError(f"weights of MIL data type {dtype} are not supported")
        try:
            data = np.asarray(getattr(reader, method)(offset))
        except (RuntimeError, ValueError, IndexError) as exc:
            raise CoreMLFormatError(f"cannot read weights at offset {offset} of {name} ({exc}); file truncated?") from None
        if dtype == FLOAT16 and data.dtype != np.float16:
            data = data.view(np.float16)
        return data


# Sub-byte MIL types (iOS 18): bits per element; int4 is the one signed.
_SUB_BYTE = {25: 4, 35: 4, 36: 2, 37: 1, 38: 6, 39: 3}


def unpack_sub_byte(raw: bytes, dtype: int, count: int) -> np.ndarray:
    """Elements packed least significant bit first, as coremltools packs sub-byte immediate values."""
    nbits = _SUB_BYTE[dtype]
    bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[: count * nbits].reshape(count, nbits)
    values = bits.astype(np.int16) @ (1 << np.arange(nbits, dtype=np.int16))
    if dtype == 25:  # int4: two's complement
        values = np.where(values >= 8, values - 16, values)
    return values.astype(NP_DTYPES[dtype])


def tensor_shape(value_type) -> list[int]:
    return [int(d.constant.size) for d in value_type.tensorType.dimensions]


def parse_value(value, blobs: BlobFile):
    """A MIL Value -> numpy array (scalars as 0-d arrays, strings as str arrays)."""
    which = value.WhichOneof("value")
    vtype = value.type.WhichOneof("type")
    if which == "immediateValue" and value.immediateValue.WhichOneof("value") == "list":
        return [parse_value(v, blobs) for v in value.immediateValue.list.values]
    if vtype != "tensorType":
        raise CoreMLFormatError(f"constant of type {vtype} is not supported")
    dtype = value.type.tensorType.dataType
    shape = tensor_shape(value.type)
    if which == "blobFileValue":
        arr = blobs.read(value.blobFileValue.fileName, value.blobFileValue.offset, dtype)
        return arr.reshape(shape)
    tensor = value.immediateValue.tensor
    field = tensor.WhichOneof("value")
    if field is None:
        return np.zeros(shape, NP_DTYPES.get(dtype, np.float32))
    raw = getattr(tensor, field).values
    if field == "bytes" and dtype in _SUB_BYTE:
        arr = unpack_sub_byte(raw, dtype, int(np.prod(shape)))
    elif field == "bytes":
        arr = np.frombuffer(raw, dtype=NP_DTYPES[dtype])
    elif field == "strings":
        arr = np.array(list(raw), dtype=object)
    else:
        arr = np.array(list(raw), dtype=NP_DTYPES.get(dtype, np.float32))
    return arr.reshape(shape)


# FeatureTypes ArrayFeatureType.ArrayDataType -> numpy dtype
_ARRAY_DTYPES = {65568: np.float32, 65600: np.float64, 131104: np.int32, 131080: np.int8, 65552: np.float16}


def feed_array(feature, value) -> np.ndarray:
    """A model input as Core ML holds it: a multiarray cast to its declared type, an image as (1, C, H, W).

    Floats are handed to the ops as float32 (holding exactly the fp16 values of an fp16 input).
    """
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        pixels = np.asarray(value, np.float32)
        chw = pixels[None] if pixels.ndim == 2 else np.transpose(pixels[..., :3], (2, 0, 1))
        if feature.type.imageType.colorSpace == 30:  # BGR
            chw = chw[::-1]
        return np.ascontiguousarray(chw[None])
    if kind != "multiArrayType":
        raise CoreMLFormatError(f"input {feature.name}: feature type {kind} is not supported")
    arr = np.asarray(value).astype(_ARRAY_DTYPES.get(feature.type.multiArrayType.dataType, np.float32))
    return arr.astype(np.float32) if arr.dtype.kind == "f" else arr


def output_array(feature, value):
    """An output in its declared multiarray type (fp16 outputs come back as float16, as from Core ML)."""
    if feature.type.WhichOneof("Type") != "multiArrayType" or not isinstance(value, np.ndarray):
        return value
    return value.astype(_ARRAY_DTYPES.get(feature.type.multiArrayType.dataType, value.dtype), copy=False)
