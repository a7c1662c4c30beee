"""The evaluator's two precisions, and coremltools' compute units that choose between them.

precision "cpu"      float32 compute, as Core ML's CPU runs a model (ComputeUnit.CPU_ONLY);
          "gpu/ane"  float16 compute, as the GPU and the Neural Engine run it (ComputeUnit.ALL,
                     CPU_AND_GPU, CPU_AND_NE): an ML Program's fp16-typed ops rounded to fp16,
                     a NeuralNetwork's weights and every layer's output rounded to fp16.
"""

from __future__ import annotations

from enum import Enum

PRECISIONS = ("cpu", "gpu/ane")


class ComputeUnit(Enum):
    """coremltools.ComputeUnit's members, with its values (coremltools itself need not be imported)."""

    ALL = 1
    CPU_AND_GPU = 2
    CPU_ONLY = 3
    CPU_AND_NE = 4


def checked_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    return precision


def compute_unit(units) -> ComputeUnit:
    """ComputeUnit from itself, from coremltools.ComputeUnit (by member name) or from a name such as "CPU_ONLY"."""
    name = units if isinstance(units, str) else getattr(units, "name", None)
    try:
        return ComputeUnit[str(name).upper()]
    except KeyError:
        valid = ", ".join(ComputeUnit.__members__)
        raise ValueError(f"compute_units {units!r}: choose from {valid} (or coremltools.ComputeUnit's members)") from None


def precision_of(units) -> str:
    """The precision Core ML computes in on these compute units: float32 on the CPU only, else float16."""
    return "cpu" if compute_unit(units) is ComputeUnit.CPU_ONLY else "gpu/ane"
