"""Representative data for int8 calibration: class-balanced, seeded, never test images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from train.data import ImageDataset, load_dataset, load_split, source_spec, split_indices
from train.errors import DataError
from train.preprocessing import Preprocessing
from train.tensors import load_tensor_file

from .errors import CalibrationDataError

MIN_CALIBRATION = 100


@dataclass(frozen=True)
class CalibrationSet:
    inputs: tuple[np.ndarray, ...]  # one batch-first float32 array per model input
    description: dict


def balanced_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Round-robin over classes so every class is equally represented (as far as it has images)."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < size and any(pools):
        for pool in pools:
            if pool and len(picked) < size:
                picked.append(int(pool.pop()))
    return np.asarray(sorted(picked), dtype=np.int64)


def _image_calibration(dataset: ImageDataset, indices, prep: Preprocessing, size: int, seed: int,
                       what: str) -> CalibrationSet:
    labels = dataset.labels[indices]
    if len(indices) < MIN_CALIBRATION:
        raise CalibrationDataError(
            f"{what}: {len(indices)} images, int8 calibration needs at least {MIN_CALIBRATION}; "
            "give more with --calibration DIR"
        )
    chosen = np.asarray(indices)[balanced_sample(labels, min(size, len(indices)), seed)]
    x = prep.apply_batch([dataset.images[i] for i in chosen])
    lo, hi = prep.value_range
    # One pixel at each end of the input range pins the uint8 input's scale to
    # exactly 1 and zero point to 0, so apps can feed raw pixels unchanged.
    x[0].flat[0], x[0].flat[1] = lo, hi
    counts = np.bincount(dataset.labels[chosen], minlength=len(dataset.class_names))
    return CalibrationSet((x,), {
        "source": what, "count": int(len(chosen)), "seed": seed,
        "per_class": {n: int(c) for n, c in zip(dataset.class_names, counts)},
    })


def _array_calibration(path: Path, input_shapes: list[tuple], input_names: list[str], size: int,
                       seed: int) -> CalibrationSet:
    arrays, _ = load_tensor_file(path, input_shapes, input_names, CalibrationDataError)
    count = len(arrays[0])
    if count < MIN_CALIBRATION:
        raise CalibrationDataError(f"{path}: {count} samples, int8 calibration needs at least {MIN_CALIBRATION}")
    pick = np.sort(np.random.default_rng(seed).permutation(count)[: min(size, count)])
    return CalibrationSet(tuple(a[pick] for a in arrays), {"source": str(path), "count": int(len(pick)), "seed": seed})


def resolve_calibration(spec: str | None, run_split: Path | None, prep: Preprocessing | None,
                        input_shapes: list[tuple], input_names: list[str], size: int, seed: int,
                        log: Callable[[str], None] = print) -> CalibrationSet:
    """Calibration data from --calibration, or by default the run's training split."""
    if spec and spec.lower().endswith((".npy", ".npz")):
        return _array_calibration(Path(spec), input_shapes, input_names, size, seed)
    if prep is None:
        raise CalibrationDataError(
            "int8 needs calibration data and this model's inputs are not images described by a run dir; "
            "pass --calibration FILE.npy (samples of the model's input, batch first)"
        )
    split = load_split(run_split) if run_split and run_split.is_file() else None
    if spec is None:
        if split is None:
            raise CalibrationDataError("int8 needs calibration images; pass --calibration digits|DIR|FILE.npy")
        spec = source_spec(split["source"])
    try:
        dataset = load_dataset(spec, log)
    except DataError as exc:
        raise CalibrationDataError(f"calibration: {exc}") from None
    if split is not None and _same_source(dataset, split):
        # Only the training split: validation and test images must stay unseen.
        return _image_calibration(dataset, split_indices(dataset, split, "train"), prep, size, seed,
                                  f"{spec} (train split)")
    return _image_calibration(dataset, list(range(len(dataset))), prep, size, seed, str(spec))


def _same_source(dataset: ImageDataset, split: dict) -> bool:
    return dataset.source == split["source"]
