"""Output comparison against the reference model."""

from __future__ import annotations

import math

import numpy as np


def top1(outputs: np.ndarray) -> np.ndarray:
    return np.argmax(outputs.reshape(len(outputs), -1), axis=-1)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(pred == labels))


def agreement(pred: np.ndarray, ref_pred: np.ndarray) -> float:
    return float(np.mean(pred == ref_pred))


def max_abs_error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))))


def sqnr_db(out: np.ndarray, ref: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of `out` against `ref`; inf when identical."""
    ref64 = ref.astype(np.float64)
    noise = float(np.sum((out.astype(np.float64) - ref64) ** 2))
    signal = float(np.sum(ref64 ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def finite_or_none(v: float) -> float | None:
    """JSON has no infinity; null stands for 'no error at all' in report.json."""
    return None if v is None or math.isinf(v) or math.isnan(v) else float(v)
