"""The judge of budgeted conversion: candidates against the Keras model on validation data.

It lives in the front door because it needs both convert (the candidates) and
benchmarks (the runtimes); convert itself never imports benchmarks. The data is a
run dir's validation split, or the user's own `--validation FILE.npz|DIR`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.parity.outputs import describe_outputs, first_classification, resolve_labels
from benchmarks.parity.per_output import output_figures
from benchmarks.runners import KerasRunner, artifact_runner, predict_batched
from convert.budget import Budget
from convert.errors import UsageError
from train.data import load_dataset, load_split, split_part
from train.errors import DataError
from train.loading import load_keras_model, resolve_model_path
from train.preprocessing import Preprocessing
from train.tensors import load_tensor_file


def min_validation_images(budget_pp: float) -> int:
    """One image must be worth less than the budget: N >= 100 / budget."""
    return math.ceil(100.0 / budget_pp - 1e-9)


@dataclass
class Validation:
    """judge(path, target): a candidate's per-output validation figures against the Keras model.

    Plain data (the inputs, the reference outputs, the labels, the output specs), so a Ray worker of
    the budget search (mobilepack/ray_search.py) judges its candidates with this same code.
    """

    x: list[np.ndarray]
    reference: list[np.ndarray]
    labels: dict
    specs: list

    def __call__(self, path: Path, target: str) -> list:
        return self.figures(predict_batched(artifact_runner(path, target), self.x, 32))

    def figures(self, out: list[np.ndarray]) -> list:
        return [output_figures(s, out[s.index], self.reference[s.index], self.labels.get(s.name)) for s in self.specs]


def validation_judge(source: Path, budget: Budget, log: Callable[[str], None] = print,
                     validation: str | None = None, output_kinds: dict | None = None,
                     load: Callable | None = None) -> Validation:
    """The Validation that judges candidates: the run dir's validation split or `validation`, and the reference.

    `load(path)` loads the Keras model (the CLI passes one that knows --unsafe-load, --custom-objects
    and --input-shape); by default it is loaded in safe mode. The reference is run here, once.
    """
    model_path = resolve_model_path(source)
    if validation is None:
        _check_run_dir(model_path.parent, source, budget)
    model = load(model_path) if load else load_keras_model(model_path)
    specs = describe_outputs(model, output_kinds)
    if validation is None:
        x, labels = _run_dir_split(model_path.parent, specs, log)
    else:
        x, labels = _own_data(validation, model, model_path.parent, specs, log)
    _check_budget_is_measurable(budget, specs, labels, len(x[0]), validation or "the validation split")
    reference = predict_batched(KerasRunner(model), x, 64)
    first = first_classification(specs)
    if first is not None and first.name in labels:
        ref_acc = float(np.mean(reference[first.index].argmax(-1) == labels[first.name]))
        log(f"validation: {len(x[0])} {'images' if validation is None else 'inputs'}, reference accuracy {ref_acc:.4f}")
    else:
        log(f"validation: {len(x[0])} inputs, no class labels: outputs held to --min-sqnr")
    return Validation(x, reference, labels, specs)


def _check_run_dir(run_dir: Path, source: Path, budget: Budget) -> None:
    if not (run_dir / "split.json").is_file() or not (run_dir / "preprocessing.json").is_file():
        raise UsageError(f"--max-drop needs a run dir from `mobilepack train` (its validation split) or "
                         f"--validation FILE.npz|DIR; {source} has neither")
    split = load_split(run_dir / "split.json")
    if budget.max_drop_pp is not None:  # known from split.json: refuse before reading any image
        _check_count(len(split["val"]), budget.max_drop_pp, "the validation split", "train with more data")


def _check_count(count: int, budget_pp: float, what: str, more: str) -> None:
    need = min_validation_images(budget_pp)
    if count < need:
        raise UsageError(
            f"{what} has {count} images; measuring a {budget_pp:g} pp budget needs at least {need} (one image "
            f"must weigh less than the budget): {more} or a larger --max-drop"
        )


def _run_dir_split(run_dir: Path, specs, log) -> tuple[list[np.ndarray], dict]:
    try:
        dataset, idx = split_part(run_dir / "split.json", "val", log)
    except DataError as exc:
        raise UsageError(f"--max-drop: cannot read the validation data: {exc}") from None
    prep = Preprocessing.load(run_dir / "preprocessing.json")
    return [prep.apply_batch([dataset.images[i] for i in idx])], _image_labels(specs, dataset.labels[idx])


def _own_data(spec: str, model, run_dir: Path, specs, log) -> tuple[list[np.ndarray], dict]:
    """--validation FILE.npz (x or one array per input; y / y_<output> labels) or an image folder."""
    names = [t.name for t in model.inputs]
    if spec.lower().endswith((".npz", ".npy")):
        arrays, named = load_tensor_file(Path(spec), [tuple(t.shape)[1:] for t in model.inputs], names, UsageError,
                                         [str(t.dtype) for t in model.inputs])
        return arrays, resolve_labels(named, specs, len(arrays[0]), spec)
    if not (run_dir / "preprocessing.json").is_file():
        raise UsageError(f"--validation {spec}: an image folder needs the run dir's preprocessing.json; this model "
                         "has none: give --validation FILE.npz with the model's inputs as 'x'")
    try:
        dataset = load_dataset(spec, log)
    except DataError as exc:
        raise UsageError(f"--validation {spec}: {exc}") from None
    prep = Preprocessing.load(run_dir / "preprocessing.json")
    return [prep.apply_batch(dataset.images)], _image_labels(specs, dataset.labels)


def _image_labels(specs, labels: np.ndarray) -> dict:
    """An image folder labels the first classification output."""
    first = first_classification(specs)
    return {first.name: labels} if first is not None else {}


def _check_budget_is_measurable(budget: Budget, specs, labels: dict, count: int, what: str) -> None:
    labelled = [s for s in specs if s.kind == "classification" and s.name in labels]
    if budget.max_drop_pp is not None and labelled:
        _check_count(count, budget.max_drop_pp, what, "give more validation data")
    unknown = [n for n, _ in budget.min_sqnr_by_output if n not in {s.name for s in specs}]
    if unknown:
        raise UsageError(f"--min-sqnr {unknown[0]}=...: the model has no output of that name; its outputs are "
                         f"{', '.join(s.name for s in specs)}")
    if not labelled and budget.min_sqnr_db is None and not budget.min_sqnr_by_output:
        raise UsageError(f"--max-drop: {what} has no class labels for this model's outputs, so no accuracy can "
                         "drop; give labels (y or y_<output> in the .npz) or budget with --min-sqnr DB")
