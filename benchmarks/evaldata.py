"""Evaluation data: the held-out test split, a folder, or an .npz of tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from train.data import load_dataset, load_split, source_spec, split_indices
from train.errors import DataError
from train.preprocessing import Preprocessing
from train.tensors import load_tensor_file

from benchmarks.errors import BenchDataError


@dataclass(frozen=True)
class EvalData:
    inputs: tuple[np.ndarray, ...]  # model input space (float32, or the ids of an int input), batch first; one per input
    labels: np.ndarray | None  # class labels of an image folder (they label the first classification output)
    name: str
    split: str
    images: tuple[np.ndarray, ...] | None = None  # native images, for thumbnails
    label_arrays: dict | None = None  # an .npz's 'y' and 'y_<output>' arrays, resolved against the outputs in bench

    @property
    def count(self) -> int:
        return len(self.inputs[0])


def load_eval_data(spec: str, manifest, dist: Path, model, log: Callable[[str], None] = print) -> EvalData:
    """`spec` (digits, an image folder or an .npz) as inputs for the Keras `model`, checked against its inputs."""
    input_shapes = [tuple(t.shape)[1:] for t in model.inputs]
    input_names = [t.name for t in model.inputs]
    input_dtypes = [str(t.dtype) for t in model.inputs]
    if spec.lower().endswith(".npz"):
        data = _npz(Path(spec), input_shapes, input_names, input_dtypes)
    else:
        data = _images(spec, manifest, dist, log)
        if tuple(data.inputs[0].shape[1:]) != tuple(input_shapes[0]):
            raise BenchDataError(f"{spec}: inputs of shape {data.inputs[0].shape[1:]} but the model takes {input_shapes[0]}")
    if data.count == 0:
        raise BenchDataError(f"{spec}: no evaluation inputs")
    if data.labels is not None and manifest.labels is not None:
        bad = data.labels[(data.labels < 0) | (data.labels >= len(manifest.labels))]
        if len(bad):
            raise BenchDataError(f"{spec}: label {int(bad[0])} outside 0..{len(manifest.labels) - 1}")
    return data


def _images(spec: str, manifest, dist: Path, log) -> EvalData:
    if manifest.preprocessing is None:
        raise BenchDataError(
            f"--data {spec}: this model's inputs are not images described by a run dir; "
            "give --data FILE.npz with an array 'x' (and optionally integer labels 'y')"
        )
    prep = Preprocessing.from_dict(manifest.preprocessing, "manifest preprocessing")
    try:
        dataset = load_dataset(spec, log)
    except DataError as exc:
        raise BenchDataError(str(exc)) from None
    if manifest.labels is not None and dataset.class_names != manifest.labels:
        raise BenchDataError(
            f"--data {spec}: classes {dataset.class_names[:5]}... do not match the model's labels "
            f"{manifest.labels[:5]}...; evaluate on data with the same class folders"
        )
    split_file = manifest.source.get("split_file")
    split = load_split(dist / split_file) if split_file else None
    if split is not None and split["source"] == dataset.source:
        # The same data the model was trained on: only the held-out test split.
        idx = split_indices(dataset, split, "test")
        part = "test"
    else:
        idx = list(range(len(dataset)))
        part = "all"
    sub = dataset.subset(idx)
    name = "digits" if spec == "digits" else str(Path(spec).resolve())
    return EvalData((prep.apply_batch(sub.images),), sub.labels, name, part, tuple(sub.images))


def _npz(path: Path, input_shapes: list[tuple], input_names: list[str], input_dtypes=None) -> EvalData:
    arrays, named = load_tensor_file(path, input_shapes, input_names, BenchDataError, input_dtypes)
    label_arrays = {k: v for k, v in named.items() if k == "y" or k.startswith("y_")}
    return EvalData(tuple(arrays), None, str(Path(path).resolve()), "all", label_arrays=label_arrays)


def label_arrays(data: EvalData) -> dict:
    """The arrays that label outputs: an image folder's class labels are its 'y'."""
    if data.label_arrays is not None:
        return data.label_arrays
    return {} if data.labels is None else {"y": data.labels}


def default_data_spec(dist: Path) -> str:
    """The data the model was trained on (its test split is used), if the dist records it."""
    split = Path(dist) / "reference" / "split.json"
    if split.is_file():
        return source_spec(load_split(split)["source"])
    raise BenchDataError("no --data given and the manifest records no training data; pass --data DIR or FILE.npz")
