"""Reading model inputs from .npy/.npz files, for models whose inputs are not images."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_tensor_file(path: Path, input_shapes: list[tuple], input_names: list[str],
                     error: type[Exception]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Batch-first arrays, one per model input, plus every array in the file by name.

    A .npy holds the single input; a .npz holds 'x' (single input) or one array
    per input name. Shapes are checked against the model; `error` is raised
    with the path and the numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        # allow_pickle=False: data files may come from anywhere; never unpickle them.
        loaded = np.load(path, allow_pickle=False)
        named = {"x": loaded} if isinstance(loaded, np.ndarray) else {k: loaded[k] for k in loaded.keys()}
    except (OSError, ValueError) as exc:
        if "allow_pickle" in str(exc):  # an object array: Python objects, not numbers
            raise error(f"{path}: holds Python objects (dtype object), not numbers; "
                        "save a numeric array, e.g. np.save(path, np.asarray(x, dtype='float32'))") from None
        raise error(f"{path}: cannot read as .npy/.npz ({exc})") from None
    if len(input_names) == 1 and "x" in named:
        arrays = [named["x"]]
    elif all(n in named for n in input_names):
        arrays = [named[n] for n in input_names]
    else:
        raise error(f"{path}: needs an array 'x' (or one per input: {input_names}); it has {sorted(named)}")
    for a, shape, name in zip(arrays, input_shapes, input_names):
        if a.dtype.kind not in "fiu":  # strings, bool, complex, dates: no faithful float32 value
            raise error(f"{path}: input {name} is {a.dtype}, not numbers; the model takes float32 samples: "
                        "save a numeric array, e.g. x.astype('float32')")
        if tuple(a.shape[1:]) != tuple(shape):
            raise error(f"{path}: input {name} has samples of shape {tuple(a.shape[1:])}, the model takes {tuple(shape)}")
    if len({len(a) for a in arrays}) != 1:
        raise error(f"{path}: inputs have different sample counts")
    return [a.astype(np.float32) for a in arrays], named
