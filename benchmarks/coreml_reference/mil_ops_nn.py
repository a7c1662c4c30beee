"""ML Program normalisation and recurrent ops besides mil_ops.py's.

Kernels as in mil_ops.py (the op's inputs as keyword arguments). The recurrent ops follow the
MIL definitions (coremltools mil/ops/defs/iOS15/recurrent.py): x is (seq, batch, input), gate
weights are stacked in MIL's order (LSTM: input, forget, output, cell; GRU: reset, output,
update), a "reverse" layer returns its states in the order it computed them, and a
bidirectional LSTM returns its backward states aligned with the input's time steps.
"""

from __future__ import annotations

import numpy as np

from .mil_ops import _s

f32 = np.float32


def _instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + f32(_s(epsilon)))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    return y


def _l2_norm(x, epsilon=1e-6):
    """Over the last three axes; the axes before them are batch."""
    axes = tuple(range(x.ndim - 3, x.ndim))
    return x / np.sqrt(np.sum(np.square(x), axis=axes, keepdims=True) + f32(_s(epsilon)))


def _local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Across axis -3 (the channels; leading axes are batch, as in the NeuralNetwork LRN layer).

    The window of `size` channels starts size // 2 before the channel, as PyTorch's
    LocalResponseNorm places it (the two agree for odd sizes).
    """
    n = int(_s(size))
    sq = np.moveaxis(np.square(x), -3, -1)
    padded = np.pad(sq, [(0, 0)] * (sq.ndim - 1) + [(n // 2, (n - 1) // 2)])
    window = np.lib.stride_tricks.sliding_window_view(padded, n, axis=-1).sum(axis=-1)
    scale = (f32(_s(k)) + f32(_s(alpha)) / n * np.moveaxis(window, -1, -3)) ** f32(_s(beta))
    return x / scale


_ACTIVATIONS = {
    "sigmoid": lambda v: f32(1) / (f32(1) + np.exp(-v)),
    "tanh": np.tanh,
    "scaled_tanh": np.tanh,  # MIL's recurrent ops use the defaults alpha = beta = 1
    "relu": lambda v: np.maximum(v, f32(0)),
    "hard_sigmoid": lambda v: np.clip(f32(0.2) * v + f32(0.5), f32(0), f32(1)),
    "sigmoid_hard": lambda v: np.clip(f32(0.2) * v + f32(0.5), f32(0), f32(1)),
    "linear": lambda v: v,
}


def _act(name):
    return _ACTIVATIONS[str(_s(name)).lower()]


def _steps(x, reverse: bool):
    return range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])


def _lstm_pass(x, h, c, w, reverse, acts, clip):
    """One direction of an LSTM; returns the states of every step, in computation order, and the last (h, c)."""
    w_ih, w_hh, bias, peep = w
    rec, cell, out = acts
    p_i, p_f, p_o = np.split(peep, 3) if peep is not None else (f32(0),) * 3
    hs = []
    for t in _steps(x, reverse):
        gates = x[t] @ w_ih.T + h @ w_hh.T + bias
        gi, gf, go, gz = np.split(gates, 4, axis=-1)
        i, f = rec(gi + c * p_i), rec(gf + c * p_f)
        c = f * c + i * cell(gz)
        if clip is not None:
            c = np.clip(c, -clip, clip)
        h = rec(go + c * p_o) * out(c)
        hs.append(h)
    return np.stack(hs), h, c


def _lstm(x, initial_h, initial_c, weight_ih, weight_hh, bias=None, peephole=None, weight_ih_back=None,
          weight_hh_back=None, bias_back=None, peephole_back=None, direction="forward", output_sequence=False,
          recurrent_activation="sigmoid", cell_activation="tanh", activation="tanh", clip=None):
    acts = (_act(recurrent_activation), _act(cell_activation), _act(activation))
    lim = None if clip is None else f32(_s(clip))
    hidden = weight_hh.shape[1]
    fwd = (weight_ih, weight_hh, bias if bias is not None else f32(0), peephole)
    direction = str(_s(direction))
    if direction != "bidirectional":
        seq, h, c = _lstm_pass(x, initial_h, initial_c, fwd, direction == "reverse", acts, lim)
    else:
        back = (weight_ih_back, weight_hh_back, bias_back if bias_back is not None else f32(0), peephole_back)
        seq_f, h_f, c_f = _lstm_pass(x, initial_h[:, :hidden], initial_c[:, :hidden], fwd, False, acts, lim)
        seq_b, h_b, c_b = _lstm_pass(x, initial_h[:, hidden:], initial_c[:, hidden:], back, True, acts, lim)
        seq = np.concatenate([seq_f, seq_b[::-1]], axis=-1)
        h, c = np.concatenate([h_f, h_b], axis=-1), np.concatenate([c_f, c_b], axis=-1)
    return (seq if bool(_s(output_sequence)) else seq[-1:]), h, c


def _gru(x, initial_h, weight_ih, weight_hh, bias=None, direction="forward", output_sequence=False,
         recurrent_activation="sigmoid", activation="tanh", input_bias=None, reset_after=False):
    """MIL's GRU: the reset gate scales h before the output gate's recurrent weights (reset_after: after)."""
    rec, act = _act(recurrent_activation), _act(activation)
    w_r, w_o, w_z = np.split(weight_ih, 3)
    r_r, r_o, r_z = np.split(weight_hh, 3)
    b_r, b_o, b_z = np.split(bias, 3) if bias is not None else (f32(0),) * 3
    i_r, i_o, i_z = np.split(input_bias, 3) if input_bias is not None else (f32(0),) * 3
    h, hs = initial_h, []
    for t in _steps(x, str(_s(direction)) == "reverse"):
        xt = x[t]
        r = rec(xt @ w_r.T + i_r + h @ r_r.T + b_r)
        z = rec(xt @ w_z.T + i_z + h @ r_z.T + b_z)
        hidden = r * (h @ r_o.T + b_o) if bool(_s(reset_after)) else (r * h) @ r_o.T + b_o
        o = act(xt @ w_o.T + i_o + hidden)
        h = (f32(1) - z) * o + z * h
        hs.append(h)
    seq = np.stack(hs)
    return (seq if bool(_s(output_sequence)) else seq[-1:]), h


def _rnn(x, initial_h, weight_ih, weight_hh, bias=None, direction="forward", output_sequence=False,
         activation="tanh"):
    act = _act(activation)
    b = bias if bias is not None else f32(0)
    h, hs = initial_h, []
    for t in _steps(x, str(_s(direction)) == "reverse"):
        h = act(x[t] @ weight_ih.T + h @ weight_hh.T + b)
        hs.append(h)
    seq = np.stack(hs)
    return (seq if bool(_s(output_sequence)) else seq[-1:]), h


def _iou(boxes) -> np.ndarray:
    """IoU of every pair of (center_x, center_y, width, height) boxes; 0 where the union is empty."""
    cx, cy, w, h = (boxes[:, i:i + 1].astype(np.float64) for i in range(4))
    x1, x2, y1, y2 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    inter = np.maximum(0, np.minimum(x2, x2.T) - np.maximum(x1, x1.T)) * \
        np.maximum(0, np.minimum(y2, y2.T) - np.maximum(y1, y1.T))
    union = w * h + (w * h).T - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _nms_one(boxes, scores, iou_threshold, score_threshold, max_boxes, per_class) -> list[int]:
    """Greedy NMS as TensorFlow's non_max_suppression: by best class score, dropping IoU > threshold.

    per_class: a box is only suppressed by boxes whose best class is its own. If no box passes
    the score threshold, the best one is kept (as Core ML and coremltools' reference do).
    """
    best, cls = scores.max(axis=-1), scores.argmax(axis=-1)
    iou = _iou(boxes)
    keep: list[int] = []
    for i in np.argsort(-best, kind="stable"):
        if len(keep) == max_boxes:
            break
        if score_threshold is not None and not best[i] > score_threshold:
            continue
        if all(iou[i, j] <= iou_threshold for j in keep if not per_class or cls[j] == cls[i]):
            keep.append(int(i))
    return keep or [int(np.argmax(best))]


def _nms(boxes, scores, iou_threshold, max_boxes, score_threshold=None, per_class_suppression=False):
    """iOS 15: boxes (n, B, 4), scores (n, B, K), four outputs; iOS 17 (no score_threshold): boxes
    (n, 4, B), scores (n, K, B) and three outputs. Unused slots: zeros, and index -1."""
    ios17 = score_threshold is None
    if ios17:
        boxes, scores = np.swapaxes(boxes, 1, 2), np.swapaxes(scores, 1, 2)
    m, t = int(_s(max_boxes)), float(_s(iou_threshold))
    st = None if ios17 else float(_s(score_threshold))
    out_b = np.zeros((boxes.shape[0], m, 4), boxes.dtype)
    out_s = np.zeros((boxes.shape[0], m, scores.shape[-1]), scores.dtype)
    out_i = np.full((boxes.shape[0], m), -1, np.int32)
    counts = np.zeros(boxes.shape[0], np.int32)
    for b in range(boxes.shape[0]):
        keep = _nms_one(boxes[b], scores[b], t, st, m, bool(_s(per_class_suppression)))
        out_b[b, :len(keep)], out_s[b, :len(keep)], out_i[b, :len(keep)] = boxes[b, keep], scores[b, keep], keep
        counts[b] = len(keep)
    if ios17:
        return np.swapaxes(out_b, 1, 2), np.swapaxes(out_s, 1, 2), out_i
    return out_b, out_s, out_i, counts


def _rng(seed) -> np.random.Generator:
    """Core ML's random stream is its own: a seed makes ours repeatable, not equal to it (-1: unseeded)."""
    value = int(_s(seed))
    return np.random.default_rng(None if value == -1 else value)


def _random_categorical(x, mode="logits", size=1, seed=-1):
    """`size` draws per distribution along the last axis, as class indices (float, as MIL types them)."""
    logits = np.log(x.astype(np.float64)) if str(_s(mode)) == "probs" else x.astype(np.float64)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p = (p / p.sum(axis=-1, keepdims=True)).reshape(-1, x.shape[-1])
    rng, n = _rng(seed), int(_s(size))
    draws = np.stack([rng.choice(x.shape[-1], size=n, p=row) for row in p])
    return draws.reshape(x.shape[:-1] + (n,)).astype(np.float32)


RANDOM_OPS = {
    "random_bernoulli": lambda shape, prob=0.5, seed=-1: (
        _rng(seed).random(_shape(shape)) < float(_s(prob))).astype(np.float32),
    "random_normal": lambda shape, mean=0.0, stddev=1.0, seed=-1: _rng(seed).normal(
        float(_s(mean)), float(_s(stddev)), _shape(shape)).astype(np.float32),
    "random_uniform": lambda shape, low=0.0, high=1.0, seed=-1: _rng(seed).uniform(
        float(_s(low)), float(_s(high)), _shape(shape)).astype(np.float32),
    "random_categorical": _random_categorical,
}


def _shape(shape) -> tuple:
    return tuple(int(v) for v in np.asarray(shape).ravel())


def _along(param, x, axis):
    """A scale or zero point: a scalar, or a vector laid along `axis` of x."""
    p = np.asarray(param) if param is not None else np.zeros(())
    if p.ndim == 0 or axis is None:
        return p
    shape = [1] * x.ndim
    shape[int(_s(axis)) % x.ndim] = -1
    return p.reshape(shape)


def quantize(input, scale, output_dtype, zero_point=None, axis=None):  # noqa: A002 (MIL's name)
    """iOS 17 quantize: clip(round(input / scale) + zero_point), rounding half to even (numpy's around)."""
    dtype = np.dtype(str(_s(output_dtype)))
    q = np.around(input / _along(scale, input, axis)) + _along(zero_point, input, axis).astype(np.float32)
    return np.clip(q, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


def dequantize(input, scale, zero_point=None, axis=None):  # noqa: A002 (MIL's name)
    """iOS 17 dequantize: scale * (input - zero_point)."""
    zp = _along(zero_point, input, axis).astype(np.float32)
    return (_along(scale, input, axis) * (input.astype(np.float32) - zp)).astype(np.float32)


NN_OPS = {
    "quantize": quantize,
    "dequantize": dequantize,
    **RANDOM_OPS,
    "non_maximum_suppression": _nms,
    "instance_norm": _instance_norm,
    "l2_norm": _l2_norm,
    "local_response_norm": _local_response_norm,
    "lstm": _lstm,
    "gru": _gru,
    "rnn": _rnn,
}
