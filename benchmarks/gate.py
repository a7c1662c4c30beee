"""Pass/fail thresholds: one table keyed by quantization, overridable per run."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import ThresholdError


@dataclass(frozen=True)
class Threshold:
    max_drop_pp: float  # top-1 accuracy may fall at most this many percentage points
    min_agreement: float  # share of inputs whose top-1 equals the reference's


# fp32/fp16 should be numerically the reference; int8 variants may lose a little.
DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "fp32": Threshold(0.1, 0.995),
    "fp16": Threshold(0.1, 0.99),
    "dynamic": Threshold(1.0, 0.98),
    "int8": Threshold(1.0, 0.98),
    # Core ML weight compression (compute stays float).
    "int8w": Threshold(0.5, 0.98),
    "pal6": Threshold(1.0, 0.98),
    "pal4": Threshold(3.0, 0.95),
}

SUGGESTION = {
    "int8": "try --quant dynamic or fp16, or give more --calibration images",
    "dynamic": "try --quant fp16",
    "fp16": "try --quant fp32; check the model for float16 overflow",
    "fp32": "the converter changed the model's function; run with --debug and report it",
    "int8w": "try --quant fp16",
    "pal6": "try --quant int8w",
    "pal4": "try --quant pal6 or int8w",
}


def parse_overrides(values: list[str] | tuple[str, ...], option: str, lo: float, hi: float) -> dict[str, float]:
    """'int8=0.5' strings -> {quant: value}, refusing unknown names and out-of-range numbers."""
    out: dict[str, float] = {}
    for item in values:
        quant, sep, num = item.partition("=")
        if not sep:
            raise ThresholdError(f"{option} {item!r}: expected QUANT=VALUE, e.g. {option} int8=0.5")
        if quant not in DEFAULT_THRESHOLDS:
            raise ThresholdError(f"{option} {item!r}: unknown quantization; valid: {', '.join(DEFAULT_THRESHOLDS)}")
        try:
            value = float(num)
        except ValueError:
            raise ThresholdError(f"{option} {item!r}: {num!r} is not a number") from None
        if not lo <= value <= hi:
            raise ThresholdError(f"{option} {item!r}: must be between {lo:g} and {hi:g}")
        out[quant] = value
    return out


def thresholds_with(max_drop: dict[str, float], min_agreement: dict[str, float]) -> dict[str, Threshold]:
    table = dict(DEFAULT_THRESHOLDS)
    for q, v in max_drop.items():
        table[q] = replace(table[q], max_drop_pp=v)
    for q, v in min_agreement.items():
        table[q] = replace(table[q], min_agreement=v)
    return table


def judge(row: dict, threshold: Threshold, count: int) -> tuple[str, str]:
    """(status, one-sentence reason) for one artifact row."""
    problems = []
    drop = row.get("accuracy_drop_pp")
    if drop is not None and drop > threshold.max_drop_pp + 1e-9:
        problems.append(f"accuracy drop {drop:.2f} pp > {threshold.max_drop_pp:.2f} pp")
    if row["agreement"] < threshold.min_agreement:
        problems.append(f"top-1 agreement {row['agreement']:.3f} < {threshold.min_agreement:.3f}")
    where = f"on {count} inputs"
    if problems:
        return "failed", f"{row['path']}: {'; '.join(problems)} {where}; {SUGGESTION[row['quantization']]}"
    drop_text = f"drop {drop:.2f} pp <= {threshold.max_drop_pp:.2f} pp, " if drop is not None else "no labels, "
    return "passed", f"{drop_text}agreement {row['agreement']:.3f} >= {threshold.min_agreement:.3f} {where}"
