"""The judge of accuracy-budgeted conversion: candidates against the Keras model on the validation split.

It lives in the front door because it needs both convert (the candidates) and
benchmarks (the runtimes); convert itself never imports benchmarks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.runners import KerasRunner, artifact_runner, predict_batched
from convert.errors import UsageError
from train.data import load_dataset, load_split, source_spec, split_indices
from train.errors import DataError
from train.loading import load_keras_model, resolve_model_path
from train.preprocessing import Preprocessing


def min_validation_images(budget_pp: float) -> int:
    """One image must be worth less than the budget: N >= 100 / budget."""
    return math.ceil(100.0 / budget_pp - 1e-9)


def validation_judge(source: Path, budget_pp: float, unsafe: bool = False,
                     log: Callable[[str], None] = print) -> Callable[[Path, str], float]:
    """judge(path, target) -> validation accuracy drop (pp) of that artifact against the Keras model."""
    model_path = resolve_model_path(source)
    run_dir = model_path.parent
    if not (run_dir / "split.json").is_file() or not (run_dir / "preprocessing.json").is_file():
        raise UsageError(f"--max-drop needs a run dir from `mobilepack train` (its validation split); {source} has none")
    split = load_split(run_dir / "split.json")
    need = min_validation_images(budget_pp)
    if len(split["val"]) < need:  # known from split.json: refuse before reading any image
        raise UsageError(
            f"the validation split has {len(split['val'])} images; measuring a {budget_pp:g} pp budget needs at "
            f"least {need} (one image must weigh less than the budget): train with more data or a larger --max-drop"
        )
    try:
        dataset = load_dataset(source_spec(split["source"]), log)
    except DataError as exc:
        raise UsageError(f"--max-drop: cannot read the validation data: {exc}") from None
    idx = split_indices(dataset, split, "val")
    prep = Preprocessing.load(run_dir / "preprocessing.json")
    x = [prep.apply_batch([dataset.images[i] for i in idx])]
    y = dataset.labels[idx]
    reference = predict_batched(KerasRunner(load_keras_model(model_path, unsafe)), x, 64)[0]
    ref_acc = float(np.mean(reference.argmax(-1) == y))
    log(f"validation: {len(idx)} images, reference accuracy {ref_acc:.4f}")

    def judge(path: Path, target: str) -> float:
        runner = artifact_runner(path, target)
        out = predict_batched(runner, x, 32)[0]
        return (ref_acc - float(np.mean(out.argmax(-1) == y))) * 100.0

    return judge
