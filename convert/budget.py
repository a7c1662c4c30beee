"""Accuracy-budgeted quantization: walk each family's ladder, most compressed first.

The first candidate whose validation accuracy drop stays within the budget is
kept; the others are deleted. Judging needs a runtime, which convert does not
import: the caller passes `judge(path, target) -> drop in percentage points`.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from train.errors import MobilepackError

from .manifest import Artifact

Judge = Callable[[Path, str], float]
TFLITE_LADDER = ("int8", "dynamic", "fp16")
COREML_LADDER = {"mlprogram": ("pal4", "pal6", "int8w", "fp16"), "neuralnetwork": ("fp16",)}


class BudgetNotMetError(MobilepackError):
    """No candidate of a family stays within the accuracy budget."""

    exit_code = 1


def float_layer_counts(n_layers: int) -> list[int]:
    """1, 2, 4, ... layers kept in float, up to half of them (beyond that it is not an int8 model)."""
    counts, k = [], 1
    while k <= max(1, n_layers // 2):
        counts.append(k)
        k *= 2
    return counts


def choose(family: str, rungs: Iterator[tuple[str, Callable[[], Artifact]]], stage: Path, budget: float,
           judge: Judge, log: Callable[[str], None]) -> Artifact:
    trail = []
    for label, build in rungs:
        artifact = build()
        drop = judge(artifact.path(stage), artifact.target)
        within = drop <= budget + 1e-9
        trail.append({"candidate": label, "quantization": artifact.quantization, "size_bytes": artifact.size_bytes,
                      "val_drop_pp": round(drop, 4), "within_budget": within})
        log(f"  {family} {label}: validation drop {drop:.2f} pp {'<=' if within else '>'} {budget:g} pp "
            f"({artifact.size_bytes / 1024:.1f} KiB)")
        if within:
            return replace(artifact, notes={**artifact.notes, "budget_pp": budget, "search": trail})
        path = artifact.path(stage)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    tried = "; ".join(f"{t['candidate']} {t['val_drop_pp']:.2f} pp" for t in trail) or "nothing (no quantization left)"
    raise BudgetNotMetError(
        f"{family}: no candidate stays within {budget:g} pp on the validation split (tried {tried}); "
        "raise --max-drop, allow more quantizations with --quant, or give more --calibration images"
    )
