"""Datasets: scikit-learn's bundled digits, or a folder of class sub-folders.

Images stay at their native size as uint8 RGB; `Preprocessing.apply` turns
them into model input, so training, calibration and benchmarks share one path.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from train.documents import load_document, shown
from train.errors import DataError, DocumentError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_SCHEMA_VERSION = 1
# What split.json must hold for split_indices and source_spec; image ids are strings.
SPLIT_SPEC = {"schema_version": int, "source": {"kind": str, "root?": str}, "seed": int, "class_names": [str],
              "train": [str], "val": [str], "test": [str]}


@dataclass
class ImageDataset:
    """Native-size uint8 RGB images with integer labels and stable ids."""

    images: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    ids: list[str]
    source: dict
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "ImageDataset":
        idx = [int(i) for i in indices]
        return ImageDataset(
            [self.images[i] for i in idx], self.labels[idx], self.class_names,
            [self.ids[i] for i in idx], self.source,
        )


def load_digits_dataset() -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (values 0-16), as 8x8 RGB uint8 0-255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    gray = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = [np.repeat(g[:, :, None], 3, axis=2) for g in gray]
    return ImageDataset(
        images, d.target.astype(np.int64), [str(i) for i in range(10)],
        [str(i) for i in range(len(images))], {"kind": "digits"},
    )


def load_folder_dataset(root: Path, log: Callable[[str], None] = print) -> ImageDataset:
    """One sub-folder per class; corrupt or unreadable images are skipped and counted."""
    from train.preprocessing import read_rgb_image

    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such data folder")
    if not root.is_dir():
        raise DataError(f"{root}: --data must be 'digits' or a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders; put each class's images in its own sub-folder")
    if len(classes) < 2:
        raise DataError(f"{root}: only one class ({classes[0]}); a classifier needs at least 2 class sub-folders")
    images, labels, ids, skipped = [], [], [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        for path in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    images.append(read_rgb_image(path))
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
                skipped.append(path.relative_to(root).as_posix())
                continue
            labels.append(label)
            ids.append(path.relative_to(root).as_posix())
    if not images:
        what = f"all {len(skipped)} images are unreadable" if skipped else "no images (jpg, png, bmp, webp)"
        raise DataError(f"{root}: {what}; nothing to train or evaluate on")
    if skipped:
        log(f"skipped {len(skipped)} unreadable image(s) in {root}, e.g. {skipped[0]}")
    present = set(labels)
    empty = [c for i, c in enumerate(classes) if i not in present]
    if empty:
        raise DataError(f"{root}: class folder(s) {', '.join(empty)} hold no readable image")
    return ImageDataset(images, np.asarray(labels, np.int64), classes, ids,
                        {"kind": "folder", "root": str(root.resolve())}, skipped)


def source_spec(source: dict) -> str:
    """The --data value that reloads a dataset recorded as `ImageDataset.source` (e.g. in split.json)."""
    return "digits" if source["kind"] == "digits" else source["root"]


def load_dataset(spec: str, log: Callable[[str], None] = print) -> ImageDataset:
    if spec == "digits":
        return load_digits_dataset()
    return load_folder_dataset(Path(spec), log)


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """Per-class shuffled split; every class appears in train, val and test."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError("val and test fractions must be in (0, 1) and sum to less than 1")
    rng = np.random.default_rng(seed)
    split = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 3:
            raise DataError(
                f"class {int(c)} has {len(idx)} image(s); each class needs at least 3 (train, val, test)"
            )
        idx = rng.permutation(idx)
        n_test = max(1, int(round(len(idx) * test_fraction)))
        n_val = max(1, int(round(len(idx) * val_fraction)))
        split["test"] += idx[:n_test].tolist()
        split["val"] += idx[n_test:n_test + n_val].tolist()
        split["train"] += idx[n_test + n_val:].tolist()
    return {k: sorted(v) for k, v in split.items()}


def save_split(path: Path, dataset: ImageDataset, split: dict, seed: int) -> None:
    """Record the split by image id so any later stage can rebuild it exactly."""
    from train.fsutil import atomic_write_json

    atomic_write_json(path, {
        "schema_version": SPLIT_SCHEMA_VERSION,
        "source": dataset.source,
        "seed": seed,
        "class_names": dataset.class_names,
        **{k: [dataset.ids[i] for i in v] for k, v in split.items()},
    })


def load_split(path: Path) -> dict:
    """A saved split.json: a run dir's, or the copy a dist keeps in reference/; any fault is a DocumentError."""
    path = Path(path)
    if path.parent.name == "reference" and (path.parent.parent / "manifest.json").is_file():
        fix = f"re-run `mobilepack convert RUN_DIR --out {path.parent.parent}` (it copies the run's split.json)"
    else:
        fix = f"re-run `mobilepack train --out {path.parent}`"
    d = load_document(path, SPLIT_SPEC, fix, SPLIT_SCHEMA_VERSION)
    kind = d["source"]["kind"]
    if kind not in ("digits", "folder"):
        raise DocumentError(f"{path}: source.kind {shown(kind)} is neither 'digits' nor 'folder'; {fix}")
    if kind == "folder" and "root" not in d["source"]:
        raise DocumentError(f"{path}: source: missing field(s) root (the data folder); {fix}")
    return d


def split_part(split_path: Path, part: str, log: Callable[[str], None] = print) -> tuple[ImageDataset, list[int]]:
    """The dataset a saved split was made from, reloaded, and the indices of its `part` (train, val or test)."""
    split = load_split(split_path)
    dataset = load_dataset(source_spec(split["source"]), log)
    return dataset, split_indices(dataset, split, part)


def split_indices(dataset: ImageDataset, split: dict, part: str) -> list[int]:
    """Indices of `dataset` that belong to `part` of a saved split."""
    where = {id_: i for i, id_ in enumerate(dataset.ids)}
    missing = [i for i in split[part] if i not in where]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) of the saved {part} split are not in the data (e.g. {missing[0]}); "
            "was the data folder changed since training?"
        )
    return [where[i] for i in split[part]]
