"""Pass/fail thresholds: one table keyed by quantization, a limit per output kind, overridable per run.

An artifact passes when every output passes its kind's limits (and every gated user metric its
--max-metric-drop). Classification outputs are held to top-1 accuracy drop and agreement; regression
outputs to SQNR and the largest error relative to the reference output's range; embeddings to SQNR
and mean cosine similarity. The regression and embedding defaults come from
`python -m benchmarks.figures.parity` (see the README's threshold table for the measured figures).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from benchmarks.errors import ThresholdError
from benchmarks.parity.stats import resolution_notes
from benchmarks.row import MetricEntry, OutputFigures, Statistics, given


@dataclass(frozen=True)
class Threshold:
    max_drop_pp: float  # top-1 accuracy may fall at most this many percentage points
    min_agreement: float  # share of inputs whose top-1 equals the reference's
    min_sqnr_db: float = 0.0  # regression and embedding outputs: signal-to-noise against the reference
    max_rel_error: float = 1.0  # regression: largest |error| over the reference output's range
    min_cosine: float = 0.0  # embedding: mean cosine similarity to the reference


# fp32/fp16 should be numerically the reference; int8 variants may lose a little. Regression rows,
# from `python -m benchmarks.figures.parity` (three trained non-classifier heads, every variant):
# healthy fp32 >= 125 dB, fp16 65-77 dB, int8/dynamic/pal6 28-52 dB, pal4 31 dB; an int8 box head
# broken by one outlier channel 21.5 dB. SQNR is the main floor; the relative error (largest |error|
# over the output's range, a max over every input) only catches gross misses, since healthy int8
# heads already reach 6-14% of range on their worst input.
DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "fp32": Threshold(0.1, 0.995, 60.0, 0.001, 0.9999),
    "fp16": Threshold(0.1, 0.99, 40.0, 0.01, 0.999),
    # fp16 arithmetic (judged on the ARM64 column, where it happens): ~3 decimal digits per op, so looser
    # than fp16 weights on fp32 arithmetic. Chosen, not yet fitted across models: on digits (16 px) it
    # agreed on every input with a max error of 6.7e-3 (docs/arm64.md).
    "fp16-inference": Threshold(0.5, 0.98, 30.0, 0.05, 0.995),
    "dynamic": Threshold(1.0, 0.98, 25.0, 0.15, 0.99),
    "int8": Threshold(1.0, 0.98, 25.0, 0.15, 0.99),
    # Core ML weight compression, on float16 compute (the -fp32 names: float32 compute, same rows).
    "int8w": Threshold(0.5, 0.98, 30.0, 0.10, 0.995),
    "pal6": Threshold(1.0, 0.98, 25.0, 0.15, 0.99),
    "pal4": Threshold(3.0, 0.95, 18.0, 0.20, 0.98),
    # iOS 18: 4 bits like pal4, with a scale per 32 input channels or a palette per 16 output channels.
    "int4b": Threshold(3.0, 0.95, 18.0, 0.20, 0.98),
    "pal4g": Threshold(3.0, 0.95, 18.0, 0.20, 0.98),
    # iOS 17 int8 activations as well (Core ML W8A8): the budget of TFLite's int8, whose numbers it shares.
    "w8a8": Threshold(1.0, 0.98, 25.0, 0.15, 0.99),
    "int8w-fp32": Threshold(0.5, 0.98, 30.0, 0.10, 0.995),
    "pal6-fp32": Threshold(1.0, 0.98, 25.0, 0.15, 0.99),
    "pal4-fp32": Threshold(3.0, 0.95, 18.0, 0.20, 0.98),
}

# --gate QUANT.FIELD=VALUE: the field names users type, with their Threshold attribute and range.
GATE_FIELDS = {
    "max_drop": ("max_drop_pp", 0.0, 100.0),
    "min_agreement": ("min_agreement", 0.0, 1.0),
    "min_sqnr": ("min_sqnr_db", -100.0, 300.0),
    "max_rel_error": ("max_rel_error", 0.0, 100.0),
    "min_cosine": ("min_cosine", -1.0, 1.0),
}

SUGGESTION = {
    "int8": "try --quant dynamic or fp16, or give more --calibration images",
    "dynamic": "try --quant fp16",
    "fp16": "try --quant fp32; check the model for float16 overflow",
    "fp16-inference": "try --quant fp16 (float16 weights, float32 arithmetic)",
    "fp32": "the converter changed the model's function; run with --debug and report it",
    "int8w": "try --quant fp16",
    "pal6": "try --quant int8w",
    "pal4": "try --quant pal6 or int8w",
    "int4b": "try --quant pal4g, pal6 or int8w",
    "pal4g": "try --quant int4b, pal6 or int8w",
    "w8a8": "try --quant int8w, or give more --calibration images",
    "int8w-fp32": "try --quant fp32",
    "pal6-fp32": "try --quant int8w-fp32",
    "pal4-fp32": "try --quant pal6-fp32 or int8w-fp32",
}


def parse_gate(values, option: str = "--gate") -> dict[str, Threshold]:
    """'int8.max_drop=0.5' strings -> the threshold table with those rows changed."""
    table = dict(DEFAULT_THRESHOLDS)
    for item in values or ():
        key, sep, num = item.partition("=")
        quant, dot, name = key.partition(".")
        if not sep or not dot:
            raise ThresholdError(f"{option} {item!r}: expected QUANT.FIELD=VALUE, e.g. {option} int8.max_drop=0.5")
        if quant not in table:
            raise ThresholdError(f"{option} {item!r}: unknown quantization {quant!r}; valid: {', '.join(table)}")
        if name not in GATE_FIELDS:
            raise ThresholdError(f"{option} {item!r}: unknown field {name!r}; valid: {', '.join(GATE_FIELDS)}")
        attr, lo, hi = GATE_FIELDS[name]
        try:
            value = float(num)
        except ValueError:
            raise ThresholdError(f"{option} {item!r}: {num!r} is not a number") from None
        if not lo <= value <= hi:
            raise ThresholdError(f"{option} {item!r}: must be between {lo:g} and {hi:g}")
        table[quant] = replace(table[quant], **{attr: value})
    return table


def threshold_dict(t: Threshold) -> dict:
    return {f.name: getattr(t, f.name) for f in fields(t)}


@dataclass(frozen=True)
class GateCase:
    """What one artifact's figures are judged against: its file and quantization (named in the reason), the
    threshold row, how many inputs the figures come from, the gated --metric drops and the next step to name."""

    path: str
    quantization: str
    threshold: Threshold
    count: int
    metric_limits: dict | None = None
    suggestion: str | None = None  # instead of the one for the quantization


def output_problems(out: OutputFigures, t: Threshold) -> list[str]:
    """What one output misses of its kind's limits (empty: it passes)."""
    problems = []
    if out.kind == "classification":
        drop = given(out.accuracy_drop_pp)
        if drop is not None and drop > t.max_drop_pp + 1e-9:
            problems.append(f"accuracy drop {drop:.2f} pp > {t.max_drop_pp:.2f} pp")
        if out.agreement < t.min_agreement:
            problems.append(f"top-1 agreement {out.agreement:.3f} < {t.min_agreement:.3f}")
        return problems
    sqnr = out.sqnr_db  # None: identical to the reference
    if sqnr is not None and sqnr < t.min_sqnr_db:
        problems.append(f"SQNR {sqnr:.1f} dB < {t.min_sqnr_db:g} dB")
    if out.kind == "regression":
        rel = out.max_rel_error
        if rel is None or rel > t.max_rel_error:
            shown = "unbounded" if rel is None else f"{rel:.2%}"
            problems.append(f"max error {shown} of the output's range > {t.max_rel_error:.2%}")
    elif out.cosine_mean < t.min_cosine:
        problems.append(f"mean cosine similarity {out.cosine_mean:.4f} < {t.min_cosine:g}")
    return problems


def judge(outputs: list[OutputFigures], metrics: dict[str, MetricEntry] | None, case: GateCase) -> tuple[str, str]:
    """(status, one-sentence reason) for one artifact's figures; each output judged by its kind (and its
    `status` set)."""
    threshold = case.threshold
    named = len(outputs) > 1  # a single-output model keeps the short message
    problems = []
    for out in outputs:
        out.status = "failed" if (missed := output_problems(out, threshold)) else "passed"
        if missed:
            problems.append((f"output '{out.name}' ({out.kind}): " if named else "") + "; ".join(missed))
    for name, limit in (case.metric_limits or {}).items():
        m = metrics[name]
        if m.drop > limit + 1e-12:
            problems.append(f"metric '{name}' {m.reference:.4g} -> {m.value:.4g} "
                            f"({m.direction}), drop {m.drop:.4g} > {limit:g}")
    where = f"on {case.count} inputs"
    if problems:
        return "failed", (f"{case.path}: {'; '.join(problems)} {where}; "
                          f"{case.suggestion or SUGGESTION[case.quantization]}")
    return "passed", "; ".join(_passed_text(o, threshold, named) for o in outputs) + f" {where}"


def _passed_text(out: OutputFigures, t: Threshold, named: bool) -> str:
    prefix = f"'{out.name}' " if named else ""
    if out.kind == "classification":
        drop = given(out.accuracy_drop_pp)
        drop_text = f"drop {drop:.2f} pp <= {t.max_drop_pp:.2f} pp, " if drop is not None else "no labels, "
        return f"{prefix}{drop_text}agreement {out.agreement:.3f} >= {t.min_agreement:.3f}"
    sqnr = "exact" if out.sqnr_db is None else f"SQNR {out.sqnr_db:.1f} dB >= {t.min_sqnr_db:g} dB"
    if out.kind == "regression":
        return f"{prefix}{sqnr}, max error {out.max_rel_error:.2%} <= {t.max_rel_error:.2%} of range"
    return f"{prefix}{sqnr}, mean cosine {out.cosine_mean:.4f} >= {t.min_cosine:g}"


def statistics(outputs: list[OutputFigures], case: GateCase) -> Statistics:
    """Whether `case.count` inputs can resolve the gate the figures are held to (the verdict stays the point
    estimate)."""
    notes = []
    for out in outputs:
        if out.kind == "classification":
            drop_limit = case.threshold.max_drop_pp if given(out.accuracy) is not None else None
            notes += resolution_notes(case.count, case.quantization, drop_limit, case.threshold.min_agreement)
    return Statistics(underpowered=bool(notes), notes=list(dict.fromkeys(notes)))
