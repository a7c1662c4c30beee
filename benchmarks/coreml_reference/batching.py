"""Run a whole batch through a program that declares batch 1, when that is safe.

A converted image model declares its input as (1, ...), yet its ops are batch-agnostic: a
convolution, an activation or a softmax over the last axis computes each sample on its own.
Running N samples in one pass lets every matmul and copy work on N times the data per numpy
call. It is safe only while the batch stays on axis 0 and no op mixes samples, so a program
is batched only if every op is one this module knows keeps samples apart (with its axis,
permutation or shape checked); anything else (control flow, `shape`, reshapes that move the
batch, reductions over axis 0, ...) makes the whole program run per sample, as before.

The numbers are the per-sample ones, bit for bit: every kernel computes each sample with the
same calls in the same order (a conv's matmul is stacked per sample), and the per-op fp16
rounding is elementwise. The one place BLAS would sum differently is a 2-D matmul whose rows
are the samples (a classifier's dense layer): N rows take another kernel than 1 row (measured:
3.6e-6 apart on the test zoo), so those run a row at a time, which costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedOpError
from .workspace import WorkspacePool

# Ops that compute each sample of axis 0 apart and never move axis 0, whatever their arguments.
_SAMPLEWISE = {
    "abs", "acos", "add", "asin", "atan", "atanh", "avg_pool", "batch_norm", "ceil", "clamped_relu", "clip", "conv",
    "cos", "cosh", "depth_to_space", "elu", "equal", "erf", "exp", "exp2", "floor", "floor_div", "gelu", "greater",
    "greater_equal", "identity", "instance_norm", "l2_pool", "leaky_relu", "less", "less_equal", "linear_activation",
    "local_response_norm", "log", "logical_and", "logical_not", "logical_or", "logical_xor", "max_pool", "maximum",
    "minimum", "mod", "mul", "not_equal", "pixel_shuffle", "pixel_unshuffle", "pow", "prelu", "real_div", "relu",
    "relu6", "resize_bilinear", "resize_nearest_neighbor", "round", "rsqrt", "scaled_tanh", "sigmoid", "sigmoid_hard",
    "sign", "silu", "sin", "sinh", "softplus", "softplus_parametric", "softsign", "space_to_depth", "sqrt", "square",
    "sub", "tan", "tanh", "threshold", "thresholded_relu", "upsample_bilinear", "upsample_nearest_neighbor", "cast",
    "conv_transpose",  # reads only the last two entries of output_shape
}
_ONE_AXIS = {"softmax": "axis", "concat": "axis", "split": "axis", "reduce_argmax": "axis", "reduce_argmin": "axis",
             "cumsum": "axis"}
_AXES = {"reduce_mean", "reduce_max", "reduce_min", "reduce_sum", "reduce_prod", "reduce_l1_norm", "reduce_l2_norm",
         "reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square", "layer_norm", "squeeze"}


@dataclass(frozen=True)
class _Adapt:
    """A step that takes a batch once adapted: a reshape's new shape, or None for a row loop."""

    shape: list | None


def declared_shapes(spec, function: str = "main") -> dict[str, list[int]]:
    """Every tensor's declared shape in an ML Program's function (inputs and op outputs)."""
    from .values import tensor_shape

    fn = spec.mlProgram.functions[function]
    shapes = {i.name: tensor_shape(i.type) for i in fn.inputs}
    for op in fn.block_specializations[fn.opset].operations:
        for out in op.outputs:
            if out.type.WhichOneof("type") == "tensorType":
                shapes[out.name] = tensor_shape(out.type)
    return shapes


def batch_plan(program, shapes: dict[str, list[int]]):
    """Why `program` cannot run a batch in one pass (a string), or the steps to adapt (a list).

    Each entry is (step, new shape) for a reshape, whose declared leading 1 becomes -1 (at
    batch 1 the same shape, at batch N it takes the batch), or (step, None) for a matmul to run
    a row at a time.
    """
    if any(shape[:1] != [1] for name, shape in shapes.items() if name in program.input_shapes):
        return "an input does not declare batch 1"
    reshapes = []
    for step in program.steps:
        why = _refusal(program, step, shapes)
        if isinstance(why, _Adapt):
            reshapes.append((step, why.shape))
        elif why:
            return f"{step.op_type} ({step.outputs[0]}): {why}"
    return reshapes


def adapt(plan) -> None:
    """Give each planned reshape its batch-taking shape and each planned matmul its row loop
    (both the same computation at batch 1)."""
    for step, shape in plan:
        if shape is None:
            step.kernel = _row_at_a_time(step.kernel)
            continue
        step.refs.pop("shape", None)
        step.consts["shape"] = np.array(shape, np.int32)


def _row_at_a_time(kernel):
    return lambda x, **kwargs: one_row_at_a_time(x, lambda row: kernel(x=row, **kwargs))


def one_row_at_a_time(x: np.ndarray, run) -> np.ndarray:
    """run(rows) one sample's row at a time: a 2-D matmul over N rows sums in another order than over 1."""
    if len(x) == 1:
        return run(x)
    return np.concatenate([run(x[i:i + 1]) for i in range(len(x))])


def _refusal(program, step, shapes):
    """None if the step keeps samples apart, an _Adapt if it does once adapted, else why not."""
    op = step.op_type
    if op in _SAMPLEWISE:
        return _samplewise_refusal(program, step, shapes)
    data = step.refs.get("x", step.refs.get("values"))
    rank = len(shapes.get(data[0] if isinstance(data, list) else data, []))
    static = program._static
    if op in _ONE_AXIS:
        axis = static(step, _ONE_AXIS[op])
        return None if axis is not None and int(np.asarray(axis)) % max(rank, 1) != 0 else "works across axis 0"
    if op in _AXES:
        axes = static(step, "axes")
        if axes is None:
            return "no axes: it would reach axis 0"
        return None if all(int(a) % max(rank, 1) != 0 for a in np.ravel(axes)) else "works across axis 0"
    if op == "transpose":
        perm = static(step, "perm")
        return None if perm is not None and int(np.ravel(perm)[0]) == 0 else "moves axis 0"
    if op in ("matmul", "linear"):
        return _matmul_refusal(program, step, shapes)
    if op == "reshape":
        return _reshape_target(program, step, shapes)
    if op == "flatten2d":
        return None if int(np.asarray(static(step, "axis") if static(step, "axis") is not None else 1)) == 1 \
            else "merges axis 0 with another"
    if op == "pad":
        amounts = static(step, "pad")
        return None if amounts is not None and (len(np.ravel(amounts)) < 2 * rank or not any(np.ravel(amounts)[:2])) \
            else "pads axis 0"
    if op == "classify":  # probabilities pass through; the label is taken per row
        rows = shapes.get(_ref(step, "probabilities"), [])
        return None if len(rows) == 2 else "probabilities are not (batch, classes)"
    if op == "slice_by_index":
        return _slice_refusal(program, step)
    if op == "tile":
        reps = static(step, "reps")
        return None if reps is not None and len(np.ravel(reps)) == rank and int(np.ravel(reps)[0]) == 1 \
            else "repeats along axis 0"
    if op == "expand_dims":
        axes = static(step, "axes")
        return None if axes is not None and all(int(a) > 0 for a in np.ravel(axes)) else "may insert before axis 0"
    return "not known to keep samples apart"


def _samplewise_refusal(program, step, shapes):
    """Broadcasting keeps the batch on axis 0 only if every varying operand has the output's rank
    (x of (1, 4) plus a constant (3, 1, 4) would put the batch on axis 1); a conv's weight must
    be a constant."""
    if step.op_type in ("conv", "conv_transpose") and _ref(step, "weight") is not None \
            and _ref(step, "weight") not in program.values:
        return "its weight varies with the input"
    rank = len(shapes.get(step.outputs[0], []))
    for ref in step.refs.values():
        for name in ref if isinstance(ref, list) else [ref]:
            if name not in program.values and len(shapes.get(name, [])) != rank:
                return "broadcasting may move axis 0"
    return None


def _ref(step, param):
    ref = step.refs.get(param)
    return ref if isinstance(ref, str) else None


def _matmul_refusal(program, step, shapes):
    """x carries the batch on its leading axis; the other operand must be a weight (no batch)."""
    other = "weight" if step.op_type == "linear" else "y"
    if other not in step.consts and _ref(step, other) not in program.values:
        return "both operands vary with the input"
    x = shapes.get(_ref(step, "x"), [])
    transposed = program._static(step, "transpose_x")
    if len(x) < 2 or (len(x) == 2 and transposed is not None and bool(np.asarray(transposed))):
        return "axis 0 is not the batch"
    return _Adapt(None) if len(x) == 2 else None  # rows are samples: a row at a time


def _slice_refusal(program, step):
    """Axis 0 must be taken whole: both masks set, stride 1, not squeezed."""
    first = {name: program._static(step, name) for name in ("begin_mask", "end_mask", "stride", "squeeze_mask")}
    whole = all(first[m] is not None and bool(np.ravel(first[m])[0]) for m in ("begin_mask", "end_mask"))
    stride = first["stride"] is None or int(np.ravel(first["stride"])[0]) == 1
    kept = first["squeeze_mask"] is None or not bool(np.ravel(first["squeeze_mask"])[0])
    return None if whole and stride and kept else "does not take axis 0 whole"


def _reshape_target(program, step, shapes):
    shape = program._static(step, "shape")
    x = shapes.get(_ref(step, "x"), [])
    if shape is None or not x or x[0] != 1:
        return "shape is not a constant, or x has no leading 1"
    dims = [int(v) for v in np.ravel(shape)]
    if not dims or dims[0] != 1 or any(d <= 0 for d in dims[1:]):
        return "cannot tell where the batch goes"
    return _Adapt([-1, *dims[1:]])


# Samples per pass. Small passes keep each op's arrays in cache: MobileNetV2 224, batch 32, same
# process, loaded 2-core machine, img/s for chunks of 2 / 4 / 8 / 16: 16-18 / 15-18 / 10-11 / 6-10.
CHUNK = 4


def run_batched(run_chunk, feeds: list[np.ndarray], n: int, workspaces: WorkspacePool) -> list[np.ndarray]:
    """run_chunk over slices of at most CHUNK samples, one slice per core at a time.

    Each slice runs in its own thread with single-threaded BLAS: numpy releases the GIL in
    its copies, ufuncs and matmuls, and a core per slice keeps working on a busy machine,
    where BLAS's own threads wait on each other. Slices are independent, so the result does
    not depend on how the batch was cut. Each thread works in a workspace from `workspaces`.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    starts = range(0, n, CHUNK)
    workers = min(len(starts), os.cpu_count() or 1)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda i: _in_workspace(workspaces, run_chunk, [x[i:i + CHUNK] for x in feeds]), starts))
    for part, i in zip(parts, starts):
        rows = min(CHUNK, n - i)
        if any(len(o) != rows for o in part):
            raise UnsupportedOpError(f"a batched output lost its batch axis ({[o.shape for o in part]})")
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def _in_workspace(workspaces: WorkspacePool, run_chunk, feeds):
    with workspaces.lend():
        return run_chunk(feeds)
