"""The Core ML variants: what each one stores, what it computes in, and the oldest iOS that runs it.

Compressed ML Programs compute in float16 by default, as coremltools' own workflow does (convert
with compute_precision FLOAT16, then compress the weights): Core ML bars the Neural Engine from a
float32-typed ML Program (coremltools docs, "Typed Execution"). The float32-compute compressions stay
available under their `-fp32` names, outside the default set.
"""

from __future__ import annotations

from dataclasses import dataclass

from convert.errors import UsageError

IOS_TARGETS = (16, 17, 18)
# The oldest choice, and what every variant of the default set needs at most: like coremltools'
# minimum_deployment_target, a variant that needs a newer iOS is refused, never silently raised.
DEFAULT_IOS_TARGET = 16
FORMAT_IOS = {"mlprogram": 15, "neuralnetwork": 13}  # what an uncompressed model of the format needs


@dataclass(frozen=True)
class CoreMLVariant:
    quant: str
    weights: str  # how the weights are stored, for the manifest
    compute: str  # "float16" or "float32" (ML Program typing; NeuralNetwork fp16 still computes per unit)
    ios: int | None = None  # the oldest iOS that runs it; None: the format's own (FORMAT_IOS)
    default: bool = True  # converted when --quant is not given (and the --ios-target allows it)
    formats: tuple[str, ...] = ("mlprogram",)

    def needs_ios(self, fmt: str) -> int:
        return self.ios or FORMAT_IOS[fmt]

    @property
    def compressed(self) -> bool:
        return self.quant not in ("fp32", "fp16")


VARIANTS: dict[str, CoreMLVariant] = {v.quant: v for v in (
    CoreMLVariant("fp32", "float32", "float32", formats=("mlprogram", "neuralnetwork")),
    CoreMLVariant("fp16", "float16", "float16", formats=("mlprogram", "neuralnetwork")),
    CoreMLVariant("int8w", "int8, linear symmetric per channel", "float16", ios=16),
    CoreMLVariant("pal6", "6-bit k-means palette", "float16", ios=16),
    CoreMLVariant("pal4", "4-bit k-means palette", "float16", ios=16),
    CoreMLVariant("int4b", "int4, linear symmetric per block of 32 input channels", "float16", ios=18),
    CoreMLVariant("pal4g", "4-bit k-means palette per group of 16 output channels", "float16", ios=18),
    # int8 activations too: quantize/dequantize pairs calibrated on the calibration split (convert/coreml/w8a8.py)
    CoreMLVariant("w8a8", "int8, linear symmetric per channel; activations int8", "float16", ios=17, default=False),
    CoreMLVariant("int8w-fp32", "int8, linear symmetric per channel", "float32", ios=16, default=False),
    CoreMLVariant("pal6-fp32", "6-bit k-means palette", "float32", ios=16, default=False),
    CoreMLVariant("pal4-fp32", "4-bit k-means palette", "float32", ios=16, default=False),
)}


def coreml_quants(fmt: str) -> tuple[str, ...]:
    return tuple(q for q, v in VARIANTS.items() if fmt in v.formats)


def default_quants(fmt: str, ios_target: int) -> tuple[str, ...]:
    """What `convert` makes of a format when --quant is not given."""
    return tuple(q for q in coreml_quants(fmt) if VARIANTS[q].default and VARIANTS[q].needs_ios(fmt) <= ios_target)


def check_ios_target(ios_target: int) -> None:
    if ios_target not in IOS_TARGETS:
        raise UsageError(f"--ios-target {ios_target}: valid: {', '.join(map(str, IOS_TARGETS))} "
                         "(the oldest iOS your app supports), e.g. --ios-target 18")


def refuse_newer(ios_target: int, fmt: str, quants) -> None:
    """Refuse, in one line, a variant that needs a newer iOS than --ios-target."""
    for q in quants:
        needs = VARIANTS[q].needs_ios(fmt) if q in VARIANTS else 0
        if needs > ios_target:
            raise UsageError(f"--quant {q}: Core ML {fmt} {q} needs iOS {needs} but --ios-target is {ios_target}; "
                             f"add --ios-target {needs} (the app then needs iOS {needs}) or leave {q} out")
