"""ML Program elementwise ops besides mil_ops.py's: math, rounding, comparisons, logic, parametric activations.

Kernels as in mil_ops.py: the op's inputs as keyword arguments, one array back. Comparisons
return bool arrays; an op declared int32 gets its result cast by the program (mil.py).
"""

from __future__ import annotations

import numpy as np

from .mil_ops import _s

f32 = np.float32


def _per_channel(param, x) -> np.ndarray:
    """A [C] parameter broadcast along axis 1 of x (MIL's channel axis for rank >= 3)."""
    p = np.asarray(param, np.float32)
    return p.reshape((1, -1) + (1,) * (x.ndim - 2)) if p.ndim == 1 and x.ndim >= 2 else p


def _softplus_parametric(x, alpha, beta):
    return _per_channel(alpha, x) * np.logaddexp(f32(0), x * _per_channel(beta, x))


def _clamped_relu(x, alpha, beta):
    """min(beta, x) for x >= 0, min(beta, alpha * x) below."""
    return np.minimum(np.where(x >= 0, x, f32(_s(alpha)) * x), f32(_s(beta)))


UNARY = {
    "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "atanh": np.arctanh,
    "cos": np.cos, "cosh": np.cosh, "sin": np.sin, "sinh": np.sinh, "tan": np.tan,
    "ceil": np.ceil, "floor": np.floor, "round": np.round, "sign": np.sign, "exp2": np.exp2,
    "logical_not": np.logical_not,
}

BINARY = {
    "floor_div": np.floor_divide, "mod": np.mod,
    "equal": np.equal, "not_equal": np.not_equal, "greater": np.greater, "greater_equal": np.greater_equal,
    "less": np.less, "less_equal": np.less_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}

ELEMENTWISE_OPS = {
    **{name: (lambda fn: lambda x: fn(x))(fn) for name, fn in UNARY.items()},
    **{name: (lambda fn: lambda x, y: fn(x, y))(fn) for name, fn in BINARY.items()},
    "threshold": lambda x, alpha: np.maximum(x, f32(_s(alpha))),
    "clamped_relu": _clamped_relu,
    "scaled_tanh": lambda x, alpha=1.0, beta=1.0: f32(_s(alpha)) * np.tanh(f32(_s(beta)) * x),
    "thresholded_relu": lambda x, alpha=1.0: np.where(x >= f32(_s(alpha)), x, f32(0)),
    "softplus_parametric": _softplus_parametric,
}
