"""A NeuralNetwork (.mlmodel) row's two precisions: gated at gpu/ane (float16), cpu (float32) beside it.

A NeuralNetwork declares no types for its tensors: Core ML's CPU computes it in float32, the GPU and
the Neural Engine in float16 (benchmarks/coreml_reference/nn_program.py gives the rule and its sources). An
app loads a model for all compute units by default, so most iPhones run a NeuralNetwork in float16:
the row's figures and its gate are the gpu/ane ones, held to the fp16 limits whatever its weights are
stored in. The cpu figures say what an app that loads it with `.cpuOnly` gets. ML Programs keep one
set of figures: their types fix the precision (an fp32-typed program stays float32 on every unit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from benchmarks.parity.per_output import headline
from benchmarks.runners import coreml_runner

GATE_QUANTIZATION = "fp16"  # the limits a NeuralNetwork is held to: it computes in float16 on the GPU / NE
SUGGESTION = ("judged at gpu/ane precision (float16, as the GPU and Neural Engine run a NeuralNetwork): "
              "check the model for float16 overflow; an app can load it with computeUnits .cpuOnly for float32, "
              "or convert an fp32 ML Program (--coreml-format mlprogram --quant fp32), which stays float32")


def is_neural_network(artifact) -> bool:
    return artifact.target == "coreml" and artifact.format == "neuralnetwork"


def precision_fields(artifact, path: Path, runner, figures: Callable[[object], list[dict]]) -> dict:
    """{"precision", "cpu_figures"} of one row; figures(runner) gives a runner's per-output figures.

    precision: what the row's own figures were computed at ("gpu/ane" or "cpu" by the reference
    evaluator; None for Core ML itself, which picks its units, and for TFLite rows).
    """
    if artifact.target != "coreml":
        return {"precision": None, "cpu_figures": None}
    fields = {"precision": getattr(runner, "precision", None), "cpu_figures": None}
    if is_neural_network(artifact):
        outputs = figures(coreml_runner(path, precision="cpu"))
        fields["cpu_figures"] = {"precision": "cpu", **headline(outputs), "outputs": outputs}
    return fields


def gate_quantization(artifact) -> str:
    """The threshold row a row is judged by: a NeuralNetwork's is fp16's, its gpu/ane precision."""
    return GATE_QUANTIZATION if is_neural_network(artifact) else artifact.quantization
