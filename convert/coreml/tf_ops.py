"""TensorFlow ops coremltools' TF frontend lacks, registered with its own `register_tf_op`.

Keras' default (exact) GELU is TF's `0.5 * x * erfc(-x / sqrt(2))`, and coremltools 9 maps `Erf`
but not `Erfc`. Erfc(u) is emitted as 1 + erf(-u); when u is -x * c (as in GELU) the erf reads
x * c directly, which is the shape coremltools' fuse_gelu_exact pass turns into one
`gelu(mode=EXACT)` op, so the whole GELU is one op on device.
"""

from __future__ import annotations

_registered = False


def register() -> None:
    """Add the missing converters once; a coremltools that has its own keeps it."""
    global _registered
    if _registered:
        return
    from coremltools.converters.mil.frontend.tensorflow import tf_op_registry

    if "Erfc" not in tf_op_registry._TF_OPS_REGISTRY:  # noqa: SLF001 - the registry's own lookup table
        tf_op_registry.register_tf_op(Erfc)
    _registered = True


def Erfc(context, node):  # noqa: N802 - the registry maps a TF op by this function's name
    from coremltools.converters.mil import Builder as mb

    u = context[node.inputs[0]]
    z = _negated(mb, u)
    y = mb.add(x=1.0, y=mb.erf(x=z), name=node.name)
    context.add(node.name, y)


def _negated(mb, u):
    """-u; when u = (-x) * c (a Neg then a Mul by a constant, as TF's exact GELU builds it), x * c."""
    op = u.op
    if op is not None and op.op_type == "mul":
        a, c = op.x, op.y
        if c.val is None:
            a, c = c, a
        neg = a.op
        if c.val is not None and neg is not None and neg.op_type == "mul" and neg.y.val is not None \
                and float(neg.y.val) == -1.0:
            return mb.mul(x=neg.x, y=c.val)
    return mb.mul(x=u, y=-1.0)
