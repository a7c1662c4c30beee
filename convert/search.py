"""Budgeted quantization: walk each family's ladder, most compressed first.

The first candidate within the budget is kept; the others are deleted. The budget
is an accuracy drop for labelled classification outputs (`--max-drop PP`) and an
SQNR floor for the others (`--min-sqnr DB`, global or per output). Judging needs a
runtime, which convert does not import: the caller passes a `Judge` (convert/budget.py).
The bench's recommendation holds artifacts to the same Budget.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from convert.budget import Budget, BudgetNotMetError, Judge
from convert.artifacts import coreml_artifact, save_coreml, tflite_artifact, variant_name
from convert.context import ConversionContext
from convert.coreml.convert import convert_coreml, uncompressed, weight_errors
from convert.coreml.variants import VARIANTS
from convert.errors import ConversionError, UsageError
from convert.manifest import Artifact, Failure
from convert.tflite.convert import convert_tflite, layer_sensitivity

Search = Callable[[ConversionContext, Callable[[str], None]], list[Artifact]]
TFLITE_LADDER = ("int8", "dynamic", "fp16")
# Smallest first, as measured on digits (python -m benchmarks.figures.coreml_compress: pal4 63.0 KiB, pal4g 63.3,
# int4b 63.5, pal4-fp32 66.5, pal6 85.7, pal6-fp32 89.4, int8w 108.7, int8w-fp32 112.6, fp16 197.8). Rungs the
# --ios-target or --quant does not allow are skipped: the iOS 18 ones need --ios-target 18, the -fp32 ones --quant.
COREML_LADDER = {"mlprogram": ("pal4", "pal4g", "int4b", "pal4-fp32", "pal6", "pal6-fp32", "int8w", "int8w-fp32",
                               "fp16"),
                 "neuralnetwork": ("fp16",)}


def float_layer_counts(n_layers: int) -> list[int]:
    """1, 2, 4, ... layers kept in float, up to half of them (beyond that it is not an int8 model)."""
    counts, k = [], 1
    while k <= max(1, n_layers // 2):
        counts.append(k)
        k *= 2
    return counts


def budgeted(ctx: ConversionContext, judge: Judge | None,
             log: Callable[[str], None]) -> tuple[list[Artifact], list[Failure]]:
    """One artifact per family: the most compressed rung of its ladder that `judge` finds within budget;
    a family none of whose candidates converts is a Failure, and the others go on."""
    if judge is None:
        raise UsageError("a budget needs validation data to evaluate candidates; convert a run dir or give --validation")
    budget = ctx.config.budget()
    chosen, failed = [], []
    for target, fmt in ladder_families(ctx.config):
        log(f"searching {fmt} within {budget.describe()}")
        ladder = Ladder(ctx, target, fmt)
        judged = ((label, lambda b=build: _judged(b(), ctx.stage, judge)) for label, build in rungs(ladder))
        family_result(target, fmt, lambda: choose(fmt, judged, ctx.stage, budget, log), chosen, failed)
    return chosen, failed


def family_result(target: str, fmt: str, walk: Callable[[], Artifact], chosen: list, failed: list) -> None:
    """The family's chosen artifact into `chosen`, or, when none of its candidates converted, its Failure into
    `failed` (a budget no candidate meets stays an error of the run: the user asked for that budget)."""
    try:
        chosen.append(walk())
    except BudgetNotMetError:
        raise
    except ConversionError as exc:
        failed.append(Failure(name=variant_name(target, fmt, "budget"), target=target, format=fmt,
                              quantization="budget search", reason=str(exc)))


def ladder_families(config) -> list[tuple[str, str]]:
    return [(target, fmt) for target, fmt, _ in config.families()]


@dataclass(frozen=True)
class Rung:
    """One candidate of a ladder: a quantization, or it with its `keep` worst tensors/weights left float."""

    label: str
    quant: str
    keep: tuple | None = None  # (names, score) entries of the ranking, worst first; None for the plain quantization


class Ladder:
    """A family's rungs, built one at a time in this process (or on a Ray worker, mobilepack/ray_search.py).

    It keeps what a later rung reuses: the int8 graph the sensitivity ranking walks, and each compressed
    Core ML model (ranked, if it misses, against the conversion it was compressed from: coreml.uncompressed).
    """

    def __init__(self, ctx: ConversionContext, target: str, fmt: str):
        self.ctx, self.target, self.fmt = ctx, target, fmt
        ladder = TFLITE_LADDER if target == "tflite" else COREML_LADDER[fmt]
        self.bases = [Rung(q, q) for q in ladder if ctx.config.allows(target, fmt, q)]
        self._built: dict = {}  # quant -> the int8 bytes or the compressed MLModel

    def ranked(self, rung: Rung) -> bool:
        """Whether a miss of this rung is followed by the same quantization with its worst parts float."""
        if rung.keep is not None:
            return False
        return rung.quant == "int8" if self.target == "tflite" else VARIANTS[rung.quant].compressed

    def build(self, rung: Rung) -> Artifact:
        ctx, q = self.ctx, rung.quant
        if self.target == "tflite":
            if rung.keep is not None:
                return tflite_artifact(ctx, "int8", rung.keep)
            if q != "int8":
                return tflite_artifact(ctx, q)
            self._built[q] = convert_tflite(ctx.model, "int8", ctx.calibration, ctx.image_input, ctx.config.int8_output)
            return tflite_artifact(ctx, "int8", data=self._built[q])
        if rung.keep is not None:
            return coreml_artifact(ctx, self.fmt, q, rung.keep)
        self._built[q] = convert_coreml(ctx, self.fmt, q)
        return save_coreml(ctx, self._built[q], self.fmt, q)

    def refinements(self, rung: Rung) -> list[Rung]:
        """The rungs after a missed `rung`: its worst 1, 2, 4, ... tensors (TFLite) or weights (Core ML) float."""
        if not self.ranked(rung) or rung.quant not in self._built:  # a rung that never converted has none
            return []
        ctx, q = self.ctx, rung.quant
        if self.target == "tflite":
            ranked = layer_sensitivity(ctx.model, ctx.calibration, self._built.pop(q))
            what = "tensor(s) kept float"
        else:
            ranked = weight_errors(self._built.pop(q), uncompressed(ctx, self.fmt, q))
            what = "weight(s) uncompressed"
        return [Rung(f"{q} with {k} {what}", q, tuple(ranked[:k])) for k in float_layer_counts(len(ranked))]


def rungs(ladder: Ladder) -> Iterator[tuple[str, Callable[[], Artifact]]]:
    """(label, build) in ladder order; a rung's refinements are ranked only once it has missed the budget."""
    for base in ladder.bases:
        yield base.label, lambda b=base: ladder.build(b)
        for rung in ladder.refinements(base):
            yield rung.label, lambda r=rung: ladder.build(r)


def _judged(artifact: Artifact, stage: Path, judge: Judge) -> tuple[Artifact, list]:
    return artifact, judge(artifact.path(stage), artifact.target)


def choose(family: str, candidates: Iterator[tuple[str, Callable[[], tuple[Artifact, list]]]], stage: Path,
           budget: Budget, log: Callable[[str], None]) -> Artifact:
    """The first candidate within budget, its search trail in its notes; the ones before it are deleted."""
    trail, unconverted = [], []
    for label, judged in candidates:
        try:
            artifact, outputs = judged()
        except ConversionError as exc:  # that candidate only: the walk goes on to the next
            unconverted.append(f"{label}: {exc}")
            log(f"  {family} {label}: could not convert: {exc}")
            continue
        within, said = budget.check(outputs)
        trail.append({"candidate": label, "quantization": artifact.quantization, "size_bytes": artifact.size_bytes,
                      "val_drop_pp": _first_drop(outputs), "val_min_sqnr_db": _min_sqnr(outputs),
                      "within_budget": within, "compared": said})
        log(f"  {family} {label}: validation {said} ({artifact.size_bytes / 1024:.1f} KiB)")
        if within:
            notes = {**artifact.notes, "budget": budget.to_dict(), "search": trail}
            if budget.max_drop_pp is not None:
                notes["budget_pp"] = budget.max_drop_pp
            return replace(artifact, notes=notes)
        path = artifact.path(stage)  # a candidate judged on a Ray worker was never written here
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if unconverted and not trail:
        raise ConversionError(f"{family}: no candidate converted ({unconverted[0]})")
    tried = "; ".join(f"{t['candidate']}: {t['compared']}" for t in trail) or "nothing (no quantization left)"
    raise BudgetNotMetError(
        f"{family}: no candidate stays within {budget.describe()} on the validation data (tried {tried}); "
        "raise --max-drop or lower --min-sqnr, allow more quantizations with --quant, or give more "
        "--calibration data"
    )


def _first_drop(outputs: list[dict]) -> float | None:
    drop = next((o.get("accuracy_drop_pp") for o in outputs if o.get("accuracy_drop_pp") is not None), None)
    return None if drop is None else round(drop, 4)


def _min_sqnr(outputs: list[dict]) -> float | None:
    finite = [o["sqnr_db"] for o in outputs if o.get("sqnr_db") is not None]
    return round(min(finite), 2) if finite else None
