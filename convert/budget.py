"""Budgeted quantization: walk each family's ladder, most compressed first.

The first candidate within the budget is kept; the others are deleted. The budget
is an accuracy drop for labelled classification outputs (`--max-drop PP`) and an
SQNR floor for the others (`--min-sqnr DB`, global or per output). Judging needs a
runtime, which convert does not import: the caller passes `evaluate(path, target) ->
per-output figures` (dicts with name, kind, accuracy_drop_pp or None, sqnr_db).
The bench's recommendation holds artifacts to the same Budget.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from train.errors import MobilepackError

from .artifacts import coreml_artifact, save_coreml, tflite_artifact
from .context import ConversionContext
from .coreml import convert_coreml, weight_errors
from .coreml_variants import VARIANTS
from .errors import UsageError
from .manifest import Artifact
from .tflite import convert_tflite, layer_sensitivity

Evaluator = Callable[[Path, str], list]
TFLITE_LADDER = ("int8", "dynamic", "fp16")
# Smallest first, as measured on digits (python -m benchmarks.figures.coreml_compress: pal4 63.0 KiB, pal4g 63.3,
# int4b 63.5, pal4-fp32 66.5, pal6 85.7, pal6-fp32 89.4, int8w 108.7, int8w-fp32 112.6, fp16 197.8). Rungs the
# --ios-target or --quant does not allow are skipped: the iOS 18 ones need --ios-target 18, the -fp32 ones --quant.
COREML_LADDER = {"mlprogram": ("pal4", "pal4g", "int4b", "pal4-fp32", "pal6", "pal6-fp32", "int8w", "int8w-fp32",
                               "fp16"),
                 "neuralnetwork": ("fp16",)}


class BudgetNotMetError(MobilepackError):
    """No candidate of a family stays within the accuracy budget."""

    exit_code = 1


@dataclass(frozen=True)
class Budget:
    max_drop_pp: float | None = None  # labelled classification outputs: accuracy drop, percentage points
    min_sqnr_db: float | None = None  # every other output (or one without labels): SQNR floor
    min_sqnr_by_output: tuple[tuple[str, float], ...] = ()  # per-output floors, over the global one

    def sqnr_floor(self, output: str) -> float | None:
        return dict(self.min_sqnr_by_output).get(output, self.min_sqnr_db)

    def describe(self) -> str:
        parts = [f"{self.max_drop_pp:g} pp"] if self.max_drop_pp is not None else []
        if self.min_sqnr_db is not None:
            parts.append(f"SQNR >= {self.min_sqnr_db:g} dB")
        parts += [f"'{n}' SQNR >= {v:g} dB" for n, v in self.min_sqnr_by_output]
        return ", ".join(parts) or "no budget"

    def check(self, outputs: list[dict]) -> tuple[bool, str]:
        """(within, what was compared) for per-output figures; an output with no limit is not held."""
        within, said = True, []
        named = len(outputs) > 1
        for o in outputs:
            prefix = f"'{o['name']}' " if named else ""
            drop = o.get("accuracy_drop_pp") if o["kind"] == "classification" else None
            floor = self.sqnr_floor(o["name"])
            if drop is not None and self.max_drop_pp is not None:
                ok = drop <= self.max_drop_pp + 1e-9
                said.append(f"{prefix}drop {drop:.2f} pp {'<=' if ok else '>'} {self.max_drop_pp:g} pp")
            elif floor is not None:
                sqnr = o.get("sqnr_db")  # None: identical to the reference
                ok = sqnr is None or sqnr >= floor
                shown = "exact" if sqnr is None else f"SQNR {sqnr:.1f} dB"
                said.append(f"{prefix}{shown} {'>=' if ok else '<'} {floor:g} dB")
            else:
                continue
            within = within and ok
        return within, "; ".join(said) or "no output held to a budget"

    def to_dict(self) -> dict:
        return {"max_drop_pp": self.max_drop_pp, "min_sqnr_db": self.min_sqnr_db,
                "min_sqnr_by_output": dict(self.min_sqnr_by_output)}


def parse_min_sqnr(values) -> tuple[float | None, tuple[tuple[str, float], ...]]:
    """--min-sqnr DB (every output) and/or NAME=DB (one output) -> (global floor, per-output floors)."""
    glob, per = None, []
    for item in values or ():
        name, sep, num = item.rpartition("=") if "=" in item else ("", "", item)
        try:
            value = float(num)
        except ValueError:
            raise UsageError(f"--min-sqnr {item!r}: expected DB or OUTPUT=DB, e.g. --min-sqnr 30 or "
                             "--min-sqnr box=30") from None
        if sep and not name:
            raise UsageError(f"--min-sqnr {item!r}: the output name is empty; e.g. --min-sqnr box=30")
        if sep:
            per.append((name, value))
        else:
            glob = value
    return glob, tuple(per)


def float_layer_counts(n_layers: int) -> list[int]:
    """1, 2, 4, ... layers kept in float, up to half of them (beyond that it is not an int8 model)."""
    counts, k = [], 1
    while k <= max(1, n_layers // 2):
        counts.append(k)
        k *= 2
    return counts


def budgeted(ctx: ConversionContext, evaluate: Evaluator | None, log: Callable[[str], None]) -> list[Artifact]:
    """One artifact per family: the most compressed rung of its ladder that `evaluate` finds within budget."""
    if evaluate is None:
        raise UsageError("a budget needs validation data to evaluate candidates; convert a run dir or give --validation")
    config = ctx.config
    budget = config.budget()
    chosen = []
    for target, fmt, _ in config.families():
        log(f"searching {fmt} within {budget.describe()}")
        if target == "tflite":
            rungs = tflite_rungs(ctx, [q for q in TFLITE_LADDER if config.allows(target, fmt, q)])
        else:
            rungs = coreml_rungs(ctx, fmt, [q for q in COREML_LADDER[fmt] if config.allows(target, fmt, q)])
        chosen.append(choose(fmt, rungs, ctx.stage, budget, evaluate, log))
    return chosen


def tflite_rungs(ctx: ConversionContext, quants):
    """int8, then int8 with the most sensitive layers kept float, then dynamic, then fp16."""
    for quant in quants:
        if quant != "int8":
            yield quant, lambda q=quant: tflite_artifact(ctx, q)
            continue
        # Converted once: the candidate, then (if it misses the budget) the graph the ranking walks.
        int8 = convert_tflite(ctx.model, "int8", ctx.calibration, ctx.image_input, ctx.config.int8_output)
        yield quant, lambda: tflite_artifact(ctx, "int8", data=int8)
        ranked = layer_sensitivity(ctx.model, ctx.calibration, int8)
        for k in float_layer_counts(len(ranked)):
            yield f"int8 with {k} tensor(s) kept float", lambda k=k: tflite_artifact(ctx, "int8", ranked[:k])


def coreml_rungs(ctx: ConversionContext, fmt: str, quants):
    """Each compression, then the same with its worst-reproduced weights left uncompressed, then the next."""
    references = {}  # compute precision -> the uncompressed weights, converted only if a compression misses
    for quant in quants:
        mlmodel = convert_coreml(ctx, fmt, quant)
        yield quant, lambda q=quant, m=mlmodel: save_coreml(ctx, m, fmt, q)
        if VARIANTS[quant].compressed:
            compute = VARIANTS[quant].compute
            if compute not in references:  # the same precision: the weights have the same names
                references[compute] = convert_coreml(ctx, fmt, "fp16" if compute == "float16" else "fp32")
            ranked = weight_errors(mlmodel, references[compute])
            for k in float_layer_counts(len(ranked)):
                yield (f"{quant} with {k} weight(s) uncompressed",
                       lambda q=quant, k=k: coreml_artifact(ctx, fmt, q, ranked[:k]))


def choose(family: str, rungs: Iterator[tuple[str, Callable[[], Artifact]]], stage: Path, budget: Budget,
           evaluate: Evaluator, log: Callable[[str], None]) -> Artifact:
    trail = []
    for label, build in rungs:
        artifact = build()
        outputs = evaluate(artifact.path(stage), artifact.target)
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
        path = artifact.path(stage)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
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
