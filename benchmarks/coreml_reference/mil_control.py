"""ML Program control flow (cond, while_loop) and the list ops TensorFlow's TensorArray becomes.

cond and while_loop hold nested blocks: each is a list of steps run by mil.py's own executor
against a copy of the caller's environment, so a block reads what was computed before it and
its own names never leak out. A list is a Python list of arrays; list ops return a new list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mil_ops import _ints, _s

MAX_ITERATIONS = 1_000_000  # a while_loop whose condition never turns false is an error, not a hang


@dataclass
class Block:
    inputs: list[str]
    steps: list
    outputs: list[str]


def _run_block(execute, env: dict, block: Block, values) -> tuple:
    scope = dict(env)
    scope.update(zip(block.inputs, values))
    execute(block.steps, scope)
    return tuple(scope[name] for name in block.outputs)


def cond(execute, env, blocks, pred):
    """The first block if pred, else the second; the op's outputs are that block's."""
    return _run_block(execute, env, blocks[0] if bool(np.asarray(pred)) else blocks[1], ())


def while_loop(execute, env, blocks, loop_vars):
    """Run the body while the condition block says so; each pass feeds the body's outputs back."""
    check, body = blocks
    values = tuple(loop_vars)
    for _ in range(MAX_ITERATIONS):
        (go,) = _run_block(execute, env, check, values)
        if not bool(np.asarray(go)):
            return values
        values = _run_block(execute, env, body, values)
    raise ValueError(f"while_loop ran {MAX_ITERATIONS} iterations without its condition turning false")


CONTROL_OPS = {"cond": cond, "while_loop": while_loop}


def _element(ls: list, elem_shape, dtype):
    """An element never written reads as zeros of the list's element shape."""
    return np.zeros(_ints(elem_shape) if elem_shape is not None else (), dtype)


def _make_list(init_length=1, dynamic_length=True, elem_shape=None, dtype="fp32"):
    return _List([None] * int(_s(init_length)), elem_shape,
                 {"fp32": np.float32, "fp16": np.float32, "int32": np.int32, "bool": np.bool_}[str(_s(dtype))])


class _List(list):
    """A TensorArray: its slots, and what an unwritten slot reads as."""

    def __init__(self, items, elem_shape, dtype):
        super().__init__(items)
        self.elem_shape, self.dtype = elem_shape, dtype

    def copy_with(self, items) -> "_List":
        return _List(items, self.elem_shape, self.dtype)

    def read(self, i: int) -> np.ndarray:
        item = self[i]
        return item if item is not None else _element(self, self.elem_shape, self.dtype)


def _list_write(ls, index, value):
    i = int(_s(index))
    items = list(ls) + [None] * max(0, i + 1 - len(ls))
    items[i] = np.asarray(value)
    return ls.copy_with(items)


def _list_scatter(ls, indices, value):
    idx = _ints(indices)
    items = list(ls) + [None] * max(0, max(idx, default=-1) + 1 - len(ls))
    for k, i in enumerate(idx):
        items[i] = np.asarray(value)[k]
    return ls.copy_with(items)


LIST_OPS = {
    "make_list": _make_list,
    "list_write": _list_write,
    "list_read": lambda ls, index: ls.read(int(_s(index))),
    "list_gather": lambda ls, indices: np.stack([ls.read(i) for i in _ints(indices)]),
    "list_scatter": _list_scatter,
    "list_length": lambda ls: np.array(len(ls), np.int32),
}
