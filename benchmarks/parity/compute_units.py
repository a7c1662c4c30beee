"""Which Core ML compute units can run an artifact, judged from its precision and its ops.

This is what the file allows, not a measured residency: Core ML partitions a model between the CPU,
GPU and Neural Engine at load time, and an Apple engineer notes the Neural Engine's op support
"changes based on device generation, operating system version, tensor sizes"
(https://github.com/apple/coremltools/issues/1780). The rules, and their sources:

- Precision. coremltools' "Typed Execution" guide (docs-guides/source/typed-execution.md): a float32
  typed ML Program "will run on a CPU as well as the GPU. Only the NE is barred as a compute unit when
  a model is typed with float 32 precision"; a float16 typed one may use all three. A NeuralNetwork
  has no typed precision: "The GPU and NE use float 16 precision, and the CPU uses float 32", so it
  may use all three whatever its weights.
- Ops that keep a model off the Neural Engine: recurrent layers ("RNN or LSTM ops are not supported on
  the neural engine", coremltools maintainer, issue 1780 above) and custom layers (an MLCustomLayer
  has only CPU and Metal implementations).
- Ops reported to fall back from the Neural Engine, by experiment and marked there as possibly wrong
  (hollance/neural-engine, docs/unsupported-layers.md): gather, dilated convolutions, and the
  NeuralNetwork "broadcastable" and "ND" layers. These are named in the note but do not change the units.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmarks.runners import load_spec
from benchmarks.coreml_reference.values import FLOAT16, FLOAT32

CPU_GPU, ALL_UNITS = "CPU, GPU", "CPU, GPU, Neural Engine"
_BLOCKING = {"lstm", "gru", "rnn", "simpleRecurrent", "uniDirectionalLSTM", "biDirectionalLSTM", "custom"}
_REPORTED = {"gather", "gather_nd", "gather_along_axis", "gatherND", "gatherAlongAxis", "dilated conv"}
_NOT_COMPUTE = ("const", "cast", "classify")  # and constexpr_*: weights expanded at load, before any unit runs


def compute_units(path: Path) -> dict:
    """{"compute_units": "CPU, GPU[, Neural Engine]", "compute_units_note": why} for a saved Core ML model."""
    spec, _ = load_spec(Path(path))
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        ops, precision = _program_ops(spec)
    else:
        ops, precision = _layers(getattr(spec, kind)), None
    blocking = sorted(op for op in ops if op in _BLOCKING)
    reported = sorted(op for op in ops if op in _REPORTED or op.endswith(("Broadcastable", "ND")))
    fp32 = precision is not None and precision["float32"] > 0
    units = CPU_GPU if blocking or (fp32 and not precision["float16"]) else ALL_UNITS
    if precision is None:
        said = "NeuralNetwork: float32 on the CPU, float16 on the GPU and Neural Engine"
    elif not fp32:
        said = "float16-typed ML Program"
    elif precision["float16"]:
        said = f"{precision['float32']} float32-typed op(s) run on the CPU or GPU only"
    else:
        said = "float32-typed ML Program: Core ML bars the Neural Engine"
    if blocking:
        said += f"; {_named(blocking, ops)} keep(s) the model off the Neural Engine"
    if reported:
        said += f"; {_named(reported, ops)} reported to fall back from the Neural Engine on some devices"
    return {"compute_units": units, "compute_units_note": said}


def _named(names: list[str], counts: Counter) -> str:
    return ", ".join(f"{n} ({counts[n]})" for n in names)


def _program_ops(spec) -> tuple[Counter, dict]:
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset].operations
    consts = {op.outputs[0].name: op.attributes["val"] for op in block if op.type == "const"}
    ops, precision = Counter(), {"float16": 0, "float32": 0}
    for op in block:
        if op.type in _NOT_COMPUTE or op.type.startswith("constexpr_"):
            continue
        ops[_dilated(op, consts) or op.type] += 1
        out = op.outputs[0].type
        dtype = out.tensorType.dataType if out.WhichOneof("type") == "tensorType" else None
        if dtype in (FLOAT16, FLOAT32):
            precision["float16" if dtype == FLOAT16 else "float32"] += 1
    return ops, precision


def _dilated(op, consts: dict) -> str | None:
    """'dilated conv' for a convolution whose dilations (a const or an immediate value) are not all 1."""
    if op.type not in ("conv", "conv_transpose") or "dilations" not in op.inputs:
        return None
    arg = op.inputs["dilations"].arguments[0]
    value = consts.get(arg.name) if arg.name else arg.value
    values = list(value.immediateValue.tensor.ints.values) if value is not None else []
    return "dilated conv" if any(v > 1 for v in values) else None


def _layers(nn) -> Counter:
    ops = Counter()
    for layer in nn.layers:
        kind = layer.WhichOneof("layer")
        if kind == "convolution" and any(d > 1 for d in layer.convolution.dilationFactor):
            kind = "dilated conv"
        ops[kind] += 1
    return ops
