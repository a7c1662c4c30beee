"""Work per inference: multiply-accumulates counted from a .tflite graph at batch 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tflite_macs(path: Path) -> int:
    """MACs of the convolution, depthwise, transposed-convolution, dense and matmul ops.

    Element-wise ops, pooling and activations are left out, as MAC counts usually do.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    shape = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interp.get_tensor_details()}
    total = 0
    for op in interp._get_ops_details():  # the public API has no graph walk
        ins, outs, kind = list(op["inputs"]), list(op["outputs"]), op["op_name"]
        if not outs or outs[0] not in shape:
            continue
        out = shape[outs[0]]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) > 1:
            w = shape[ins[1]]  # conv: (O, KH, KW, I); depthwise: (1, KH, KW, C*M)
            per_output = w[1] * w[2] * (w[3] if kind == "CONV_2D" else 1)
            total += int(np.prod(out)) * per_output
        elif kind == "FULLY_CONNECTED" and len(ins) > 1:
            w = shape[ins[1]]  # (O, I)
            total += int(np.prod(out)) * w[1]
        elif kind == "TRANSPOSE_CONV" and len(ins) > 2:
            w, x = shape[ins[1]], shape[ins[2]]  # (O, KH, KW, I), input (N, H, W, I)
            total += int(np.prod(x)) * w[0] * w[1] * w[2]
        elif kind == "BATCH_MATMUL" and len(ins) > 1:
            a = shape[ins[0]]
            total += int(np.prod(out)) * a[-1]
    return total
