"""Representative data for int8 calibration: class-balanced, seeded, never test images.

Any number of finite samples is used; fewer than MIN_CALIBRATION is a warning
(recorded in the manifest), not a refusal, since the converter works with any count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from train.data import ImageDataset, load_dataset, load_split, source_spec, split_indices
from train.errors import DataError
from train.preprocessing import Preprocessing
from train.tensors import load_tensor_file

from convert.errors import CalibrationDataError

MIN_CALIBRATION = 100  # fewer is allowed but warned about: rare large activations may be missed


@dataclass(frozen=True)
class CalibrationSet:
    inputs: tuple[np.ndarray, ...]  # one batch-first array per model input, in its dtype (float32, int32 ids)
    description: dict
    names: tuple[str, ...] = ()  # the model's input names, in the order of `inputs`


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


@dataclass(frozen=True)
class CalibrationRequest:
    """What to calibrate for: --calibration, how many samples, the seed, and the model's inputs."""

    spec: str | None  # digits, an image folder, FILE.npy/.npz; None: the run's training split
    size: int
    seed: int
    input_shapes: list[tuple]
    input_names: list[str]
    needed_by: str = "int8"  # the variant(s) that need it, for the messages: int8, w8a8, "int8 and w8a8"
    input_dtypes: list[str] | None = None  # each input's dtype; None: all float32


def _image_calibration(dataset: ImageDataset, indices, prep: Preprocessing, request: CalibrationRequest,
                       what: str, log: Callable[[str], None]) -> CalibrationSet:
    labels = dataset.labels[indices]
    size, seed = request.size, request.seed
    if len(indices) == 0:
        raise CalibrationDataError(f"{what}: 0 images to calibrate int8 on; give images with --calibration DIR")
    chosen = np.asarray(indices)[balanced_sample(labels, min(size, len(indices)), seed)]
    x = prep.apply_batch([dataset.images[i] for i in chosen])
    _check_finite([x], ["image"], what)
    lo, hi = prep.value_range
    # One pixel at each end of the input range pins the uint8 input's scale to
    # exactly 1 and zero point to 0, so apps can feed raw pixels unchanged.
    x[0].flat[0], x[0].flat[1] = lo, hi
    counts = np.bincount(dataset.labels[chosen], minlength=len(dataset.class_names))
    return _described((x,), {
        "source": what, "count": int(len(chosen)), "given": len(indices), "seed": seed,
        "per_class": {n: int(c) for n, c in zip(dataset.class_names, counts)},
    }, log, request.input_names)


def _array_calibration(path: Path, request: CalibrationRequest, log: Callable[[str], None]) -> CalibrationSet:
    input_names, size, seed = request.input_names, request.size, request.seed
    arrays, _ = load_tensor_file(path, request.input_shapes, input_names, CalibrationDataError, request.input_dtypes)
    count = len(arrays[0])
    if count == 0:
        raise CalibrationDataError(f"{path}: 0 samples to calibrate int8 on; give samples of the model's input, "
                                   "batch first, e.g. an array of shape (200, ...)")
    _check_finite(arrays, input_names, str(path))
    pick = np.sort(np.random.default_rng(seed).permutation(count)[: min(size, count)])
    return _described(tuple(a[pick] for a in arrays),
                      {"source": str(path), "count": int(len(pick)), "given": count, "seed": seed}, log, input_names)


def _check_finite(arrays, names: list[str], what: str) -> None:
    """NaN or inf would set an int8 range of inf: every value would quantize to garbage."""
    for a, name in zip(arrays, names):
        if a.dtype.kind != "f":
            continue
        bad = ~np.isfinite(a)
        if bad.any():
            samples = int(bad.reshape(len(a), -1).any(axis=1).sum())
            found = " and ".join(f"{n} {kind}" for n, kind in ((int(np.isnan(a).sum()), "NaN"),
                                                               (int(np.isinf(a).sum()), "inf")) if n)
            raise CalibrationDataError(
                f"{what}: input {name} holds {found} value(s) in {samples} of {len(a)} samples; "
                "int8 ranges need finite values: drop or fix those samples")


def _described(inputs: tuple, description: dict, log: Callable[[str], None], names=()) -> CalibrationSet:
    """Log how many samples were used out of how many given, and warn when too few to trust the ranges."""
    count, given = description["count"], description["given"]
    log(f"calibration: {count} of {given} samples from {description['source']}")
    if count < MIN_CALIBRATION:
        more = (f"raise --calibration-size (up to {given})" if count < given
                else "give more with --calibration")
        description["warning"] = (f"{count} samples; int8 ranges from fewer than {MIN_CALIBRATION} samples may clip "
                                  f"unseen inputs: {more}")
        log(f"warning: {description['warning']}")
    return CalibrationSet(inputs, description, tuple(names))


def resolve_calibration(request: CalibrationRequest, run_split: Path | None, prep: Preprocessing | None,
                        log: Callable[[str], None] = print) -> CalibrationSet:
    """Calibration data from --calibration, or by default the run's training split."""
    spec = request.spec
    if spec and spec.lower().endswith((".npy", ".npz")):
        return _array_calibration(Path(spec), request, log)
    if prep is None:
        raise CalibrationDataError(
            f"{request.needed_by} needs calibration data and this model's inputs are not images described by a run dir; "
            "pass --calibration FILE.npy (samples of the model's input, batch first)"
        )
    split = load_split(run_split) if run_split and run_split.is_file() else None
    if spec is None:
        if split is None:
            raise CalibrationDataError(f"{request.needed_by} needs calibration images; pass --calibration digits|DIR|FILE.npy")
        spec = source_spec(split["source"])
    try:
        dataset = load_dataset(spec, log)
    except DataError as exc:
        raise CalibrationDataError(f"calibration: {exc}") from None
    if split is not None and _same_source(dataset, split):
        # Only the training split: validation and test images must stay unseen.
        return _image_calibration(dataset, split_indices(dataset, split, "train"), prep, request,
                                  f"{spec} (train split)", log)
    return _image_calibration(dataset, list(range(len(dataset))), prep, request, str(spec), log)


def _same_source(dataset: ImageDataset, split: dict) -> bool:
    return dataset.source == split["source"]
