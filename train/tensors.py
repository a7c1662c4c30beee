"""Reading model inputs from .npy/.npz files, for models whose inputs are not images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.documents import shown, unreadable
from train.errors import DocumentError, MobilepackError

SAVE_HINT = ("save numeric arrays, batch first, e.g. np.savez(path, x=x.astype('float32')), or one per input name "
             "for several inputs (integer ids as int32)")


def load_tensor_file(path: Path, input_shapes: list[tuple], input_names: list[str],
                     error: type[MobilepackError] = DocumentError,
                     input_dtypes: list[str] | None = None) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Batch-first arrays, one per model input, plus every array in the file by name.

    A .npy holds the single input; a .npz holds 'x' (single input) or one array
    per input name. Shapes and dtypes are checked against the model (float32 inputs
    unless `input_dtypes` says otherwise); `error` is raised with the path and the numbers.
    An integer input (token ids, category indices) keeps integer values: float data for it
    is refused, since rounding would change which token is meant.
    """
    path = Path(path)
    named = read_arrays(path, error)
    if len(input_names) == 1 and "x" in named:
        arrays = [named["x"]]
    elif all(n in named for n in input_names):
        arrays = [named[n] for n in input_names]
    else:
        raise error(f"{path}: needs an array 'x' (or one per input: {input_names}); it has "
                    f"{shown(sorted(named), 80)}; {SAVE_HINT}")
    for a, shape, name in zip(arrays, input_shapes, input_names):
        if a.dtype.kind not in "fiu":  # strings, bool, complex, dates: no faithful float32 value
            raise error(f"{path}: input {name} is {a.dtype}, not numbers; the model takes numeric samples: "
                        f"{SAVE_HINT}")
        if a.ndim == 0 or tuple(a.shape[1:]) != tuple(shape):
            raise error(f"{path}: input {name} has samples of shape {tuple(a.shape[1:])}, the model takes "
                        f"{tuple(shape)}; {SAVE_HINT}")
    if len({len(a) for a in arrays}) != 1:
        raise error(f"{path}: inputs have different sample counts ({sorted({len(a) for a in arrays})}); {SAVE_HINT}")
    dtypes = input_dtypes or ["float32"] * len(arrays)
    return [_as_input(a, np.dtype(d), name, path, error) for a, d, name in zip(arrays, dtypes, input_names)], named


def _as_input(a: np.ndarray, dtype: np.dtype, name: str, path: Path, error) -> np.ndarray:
    """The array in the input's dtype; integer inputs only from integer data that fits."""
    if dtype.kind not in "iu":
        return a.astype(dtype)
    if a.dtype.kind == "f":
        raise error(f"{path}: input {name} is {a.dtype} but the model takes {dtype.name} (ids or indices); save it "
                    f"as integers, e.g. np.savez(path, {name}=ids.astype('{dtype.name}'))")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise error(f"{path}: input {name} holds {a.min()}..{a.max()}, outside {dtype.name}'s "
                    f"{info.min}..{info.max}; the model takes {dtype.name} values")
    return a.astype(dtype)


def read_arrays(path: Path, error: type[MobilepackError] = DocumentError) -> dict[str, np.ndarray]:
    """Every array of a .npy ('x') or .npz, read whole; never unpickled; any damage is `error`."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise unreadable(path, exc, SAVE_HINT, error) from None
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):  # np.load would try it as a pickle
        raise error(f"{path}: not a .npy/.npz file (a pickle, text or another format); {SAVE_HINT}")
    try:
        # allow_pickle=False: data files may come from anywhere; never unpickle them.
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        with loaded:
            named = {k: loaded[k] for k in loaded.files}
    except Exception as exc:  # noqa: BLE001 - see below
        # The bytes may come from anywhere, and numpy's and zipfile's parsers raise what they meet: OSError,
        # ValueError, EOFError, BadZipFile, zlib.error, SyntaxError and tokenize.TokenError from the .npy
        # header, MemoryError for a header that claims too much, ... (tests/test_loaders.py flips bytes).
        # Only np.load and its lazy member reads run in this block.
        if "allow_pickle" in str(exc):  # an object array: Python objects, not numbers
            raise error(f"{path}: holds Python objects (dtype object), not numbers; "
                        "save a numeric array, e.g. np.save(path, np.asarray(x, dtype='float32'))") from None
        raise error(f"{path}: not a readable .npy/.npz, damaged or truncated ({_reason(exc)}); {SAVE_HINT}") from None
    foreign = [k for k, v in named.items() if not isinstance(v, np.ndarray)]
    if foreign:  # a zip member that is not a .npy: np.load hands back its raw bytes
        raise error(f"{path}: member {shown(foreign[0])} is not a .npy array; {SAVE_HINT}")
    return named


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:100] if lines else type(exc).__name__
