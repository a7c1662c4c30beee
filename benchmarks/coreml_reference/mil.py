"""Execute an ML Program (the .mlpackage format) in numpy.

Ops run in float32. In precision "gpu/ane", an op whose declared output type is fp16 has
its result rounded to float16, so a program compiled for fp16 compute carries
fp16 error through every layer as the GPU and the Neural Engine do; in precision "cpu"
(the CPU's behaviour, see model.MLModel) fp16 types only say what the
weights and the fp16 inputs hold. Compressed weights (constexpr ops) are
expanded once, at load, as Core ML expands them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .errors import CoreMLFormatError, PredictionError, UnsupportedOpError
from .kernels import round_fp16
from .mil_control import CONTROL_OPS, LIST_OPS, Block
from .constexpr_ops import CONSTEXPR_OPS
from .mil_ops import ARITHMETIC, MIL_OPS, _s, arithmetic
from .mil_ops_elementwise import ELEMENTWISE_OPS
from .mil_ops_image import IMAGE_OPS
from .mil_ops_nn import NN_OPS
from .mil_ops_tensor import TENSOR_OPS
from .precision import checked_precision
from .values import FLOAT16, NP_DTYPES, BlobFile, parse_value, tensor_shape
from .workspace import last_reads, release, sole

OPS = {**MIL_OPS, **ELEMENTWISE_OPS, **TENSOR_OPS, **NN_OPS, **IMAGE_OPS, **LIST_OPS}
# Variadic inputs: a list even when the program gives one tensor.
_LIST_INPUTS = {("concat", "values"), ("stack", "values"), ("einsum", "values"), ("reshape_like", "ref_tensors"),
                ("while_loop", "loop_vars")}

_CAST = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "int16": np.int16, "bool": np.bool_,
         "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32}


@dataclass
class _Step:
    op_type: str
    kernel: object
    refs: dict  # param -> var name | list of var names | None (then in consts)
    consts: dict  # param -> value
    outputs: list[str]
    fp16: list[bool]
    dtypes: list  # numpy dtype per output as declared (float32 for fp16 and fp32), None if not a tensor
    blocks: list | None = None  # cond / while_loop: their nested blocks (mil_control.Block)
    dies: tuple = ()  # names no later step reads (top-level steps): their memory may be reused
    in_place: object = None  # the kernel that overwrites x, used when this step is x's last reader


class MILProgram:
    def __init__(self, spec, blobs: BlobFile, function: str = "main", precision: str = "cpu",
                 observable: bool = False):
        if function not in spec.mlProgram.functions:
            raise CoreMLFormatError(f"ML Program has no function {function!r}")
        fn = spec.mlProgram.functions[function]
        block = fn.block_specializations[fn.opset]
        self.input_shapes = {i.name: tensor_shape(i.type) for i in fn.inputs}
        self.outputs = list(block.outputs)
        known = set(OPS) | set(CONSTEXPR_OPS) | set(CONTROL_OPS) | {"const", "cast"}
        unknown = sorted(_op_types(block) - known)
        if unknown:
            raise UnsupportedOpError(
                f"ML Program op(s) {', '.join(unknown)} not implemented by the reference evaluator; "
                "the model cannot be checked on this machine (run the bench on a Mac, or use the other Core ML format)",
                ops=unknown,
            )
        self.precision = checked_precision(precision)
        self.values: dict[str, object] = {}
        self._stored: dict[str, object] = {}  # consts in their stored dtypes, for the constexpr ops (load only)
        self.steps: list[_Step] = []
        for op in block.operations:
            self._load(op, blobs)
        del self._stored
        if not observable:  # folding drops the pad's and the conv's outputs, which calibration must see
            self._fold_zero_pads()
            self._fuse_activations()
        self._plan_lifetimes()

    def _load(self, op, blobs: BlobFile) -> None:
        out_names = [o.name for o in op.outputs]
        if op.type == "const":
            self._stored[out_names[0]] = parse_value(op.attributes["val"], blobs)
            self.values[out_names[0]] = _as_compute(self._stored[out_names[0]])
            return
        if op.type in CONSTEXPR_OPS:
            args = {k: parse_value(v, blobs) for k, v in op.attributes.items() if k != "name"}
            args.update({k: self._const_arg(a, blobs) for k, a in op.inputs.items()})
            try:
                result = CONSTEXPR_OPS[op.type](**args)
            except (ValueError, IndexError, KeyError, TypeError, NotImplementedError) as exc:
                raise UnsupportedOpError(f"ML Program op {op.type} ({out_names[0]}) failed: {exc}") from None
            for name, value in zip(out_names, result if isinstance(result, tuple) else (result,)):  # the sparse
                self._stored[name] = value  # ops (iOS 18) give two outputs: a mask and the nonzero values
                self.values[name] = _as_compute(value)
            return
        refs, consts = {}, {}
        for param, arg in op.inputs.items():
            many = len(arg.arguments) > 1 or (op.type, param) in _LIST_INPUTS
            names = [b.name for b in arg.arguments]
            values = [None if b.name else _as_compute(parse_value(b.value, blobs)) for b in arg.arguments]
            if not any(names):
                consts[param] = values if many else values[0]
                continue
            for i, value in enumerate(values):  # an immediate value among variables becomes a named const
                if value is not None:
                    names[i] = f"{out_names[0]}:{param}:{i}"
                    self.values[names[i]] = value
            refs[param] = names if many else names[0]
        rounded = self.precision == "gpu/ane"
        kernel = (_cast if rounded else _cast_cpu) if op.type == "cast" else {**OPS, **CONTROL_OPS}[op.type]
        fp16 = [rounded and o.type.WhichOneof("type") == "tensorType" and o.type.tensorType.dataType == FLOAT16
                for o in op.outputs]
        blocks = [self._block(b, blobs) for b in op.blocks] if op.type in CONTROL_OPS else None
        self.steps.append(_Step(op.type, kernel, refs, consts, out_names, fp16, [_declared(o) for o in op.outputs],
                                blocks))

    def _block(self, block, blobs: BlobFile) -> Block:
        """A nested block's steps (its consts join the program's: MIL names are unique program-wide)."""
        outer, self.steps = self.steps, []
        for op in block.operations:
            self._load(op, blobs)
        steps, self.steps = self.steps, outer
        return Block([i.name for i in block.inputs], steps, list(block.outputs))

    def _static(self, step: _Step, param: str):
        """A step input known at load time (an immediate value or a const), else None."""
        if param in step.consts:
            return step.consts[param]
        ref = step.refs.get(param)
        return self.values.get(ref) if isinstance(ref, str) else None

    def _uses(self, steps=None) -> Counter:
        """How many inputs (and nested blocks' outputs) read each name, through nested blocks too."""
        uses = Counter()
        for st in self.steps if steps is None else steps:
            uses.update(r for ref in st.refs.values() for r in (ref if isinstance(ref, list) else [ref]))
            for block in st.blocks or ():
                uses.update(self._uses(block.steps))
                uses.update(block.outputs)
        return uses

    def _fold_zero_pads(self) -> None:
        """A zero pad of H and W that only feeds a 'valid' conv becomes that conv's own padding.

        The converter makes TensorFlow's stride-2 'same' padding explicit; folding it saves
        copying the whole feature map once (a speed change only: the sums are the same).
        """
        uses, made_by = self._uses(), {st.outputs[0]: st for st in self.steps}
        dropped = set()
        for conv in self.steps:
            pad = made_by.get(conv.refs.get("x")) if conv.op_type == "conv" else None
            if pad is None or pad.op_type != "pad" or uses[pad.outputs[0]] != 1 or pad.outputs[0] in self.outputs:
                continue
            amounts = self._static(pad, "pad")
            mode, value = self._static(pad, "mode"), self._static(pad, "constant_val")
            if amounts is None or str(np.asarray(mode if mode is not None else "constant").item()) != "constant":
                continue
            amounts = [int(v) for v in np.asarray(amounts).ravel()]
            if (value is not None and float(np.asarray(value)) != 0.0) or len(amounts) != 8 or any(amounts[:4]) \
                    or str(np.asarray(self._static(conv, "pad_type")).item()) != "valid":
                continue
            conv.refs["x"] = pad.refs["x"]
            conv.refs.pop("pad_type", None)
            conv.refs.pop("pad", None)
            conv.consts.update(pad_type=np.array("custom"), pad=np.array(amounts[4:], np.int32))
            dropped.add(id(pad))
        self.steps = [st for st in self.steps if id(st) not in dropped]

    def _fuse_activations(self) -> None:
        """A conv whose one reader is a relu, relu6 or clip applies it itself, block by block while
        its output is in cache (depthwise.py). The bits are the two ops': the conv's output is
        rounded to fp16 first when the program says so, then the same numpy call clips it, and
        the activation's own output is finished (rounded again) as before."""
        uses, made_by = self._uses(), {st.outputs[0]: st for st in self.steps}
        dropped = set()
        for act in self.steps:
            conv = made_by.get(act.refs.get("x")) if act.op_type in _IN_PLACE_CLIPS else None
            if conv is None or conv.op_type != "conv" or uses[conv.outputs[0]] != 1 \
                    or conv.outputs[0] in self.outputs or set(act.refs) != {"x"}:
                continue
            finish = _IN_PLACE_CLIPS[act.op_type](**act.consts)
            conv.consts["post"] = _round_then(finish) if conv.fp16[0] else finish
            conv.outputs, conv.fp16, conv.dtypes = act.outputs, act.fp16, act.dtypes
            dropped.add(id(act))
        self.steps = [st for st in self.steps if id(st) not in dropped]

    def _plan_lifetimes(self) -> None:
        """Which names each top-level step reads last (then a relu may overwrite its input, and a
        bound workspace takes the dead feature maps for later outputs: see workspace.py)."""
        keep = set(self.values) | set(self.outputs) | set(self.input_shapes)
        dies = last_reads([list(self._uses([st])) for st in self.steps], keep)
        for st, dying in zip(self.steps, dies):
            st.dies = dying
            st.in_place = _IN_PLACE.get(st.op_type)

    def _const_arg(self, arg, blobs: BlobFile):
        """A constexpr input in its stored dtype: a const or constexpr output, or a value of its own (iOS 18)."""
        b = arg.arguments[0]
        return self._stored[b.name] if b.name else parse_value(b.value, blobs)

    def run(self, feeds: dict[str, np.ndarray], watch=None) -> dict[str, np.ndarray]:
        """The outputs; watch(name, value), if given, sees each top-level op output as it is made
        (before an in-place relu may reuse it), e.g. to collect activation ranges."""
        env = dict(self.values)
        env.update(feeds)
        self._execute(self.steps, env, watch, top=True)
        return {name: env[name] for name in self.outputs}

    def _execute(self, steps: list[_Step], env: dict, watch=None, top: bool = False) -> None:
        """Run steps in env. At the top level, a name's memory is released after its last reader
        (nested blocks run against a copy of env and release nothing)."""
        for step in steps:
            kwargs = dict(step.consts)
            for param, ref in step.refs.items():
                kwargs[param] = [env[r] for r in ref] if isinstance(ref, list) else env[ref]
            kernel = step.kernel
            # 2 holders: env and kwargs (another name, a view or a watcher would be more)
            if top and step.in_place is not None and step.refs.get("x") in step.dies and sole(kwargs["x"], 2):
                kernel = step.in_place
            try:
                result = kernel(**kwargs) if step.blocks is None else \
                    kernel(self._execute, env, step.blocks, **kwargs)
            except PredictionError as exc:
                raise PredictionError(f"ML Program op {step.op_type} ({step.outputs[0]}): {exc}") from None
            except (ValueError, IndexError, KeyError, TypeError, NotImplementedError) as exc:
                raise UnsupportedOpError(f"ML Program op {step.op_type} ({step.outputs[0]}) failed: {exc}") from None
            del kwargs  # (dead inputs are kept below only if nothing else holds them)
            results = result if isinstance(result, tuple) else (result,)
            for name, value, to_fp16, dtype in zip(step.outputs, results, step.fp16, step.dtypes):
                env[name] = _finish(value, to_fp16, dtype)
                if watch is not None:
                    watch(name, env[name])
            if top:  # after the step: a cond's or while_loop's blocks read env while it runs
                release(env, step.dies)  # (a block's own names are not released)


_IN_PLACE = {
    "relu": lambda x: np.maximum(x, np.float32(0), out=x),
    "relu6": lambda x: np.clip(x, np.float32(0), np.float32(6), out=x),
    **{name: arithmetic(fn, in_place=True) for name, fn in ARITHMETIC.items()},
}


# The activations a conv can apply in place (their arguments as the program gives them): the
# same numpy calls as MIL_OPS' relu, relu6 and clip.
_IN_PLACE_CLIPS = {
    "relu": lambda: _IN_PLACE["relu"],
    "relu6": lambda: _IN_PLACE["relu6"],
    "clip": lambda alpha, beta: lambda x: np.clip(x, np.float32(_s(alpha)), np.float32(_s(beta)), out=x),
}


def _round_then(finish):
    def post(x):
        round16(x)
        finish(x)
    return post


def round16(x) -> None:
    """Round a float32 array to float16 values in place, as _finish rounds an op's output."""
    x[...] = round_fp16(x)


def _op_types(block) -> set[str]:
    return {op.type for op in block.operations} | {t for op in block.operations for b in op.blocks for t in _op_types(b)}


def _declared(output):
    """The numpy dtype an op output holds in the evaluator: float32 for any float, else as declared."""
    if output.type.WhichOneof("type") != "tensorType":
        return None
    dtype = np.dtype(NP_DTYPES.get(output.type.tensorType.dataType, np.float32))
    return np.dtype(np.float32) if dtype.kind == "f" else dtype if dtype.kind in "iub" else None


def _finish(value, to_fp16: bool, dtype):
    """An op's result as the program declares it (e.g. an int32 real_div), rounded to fp16 if asked."""
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        return value
    want = dtype if dtype is not None else (np.dtype(np.float32) if value.dtype.kind == "f" else value.dtype)
    if value.dtype != want:
        value = value.astype(want)
    return round_fp16(value) if to_fp16 else value


def _as_compute(value):
    """Weights are stored fp16 or fp32; compute in float32 holding exactly the stored values."""
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(np.float32)
    return value


def _cast(x, dtype):
    target = str(np.asarray(dtype).item())
    if target == "fp16":
        return round_fp16(np.asarray(x, np.float32))
    return x.astype(_CAST[target])


def _cast_cpu(x, dtype):
    """A cast to fp16 keeps float32 precision, as the CPU's fp32 kernels do (fp16 is a minimum)."""
    target = str(np.asarray(dtype).item())
    return x.astype(np.float32) if target in ("fp16", "fp32") else x.astype(_CAST[target])
