"""95% intervals for the proportions a report gives, and whether the data can resolve a threshold.

Accuracy and agreement are proportions over n inputs: Wilson's score interval, which stays inside
[0, 1] and keeps its coverage at small n and near 0 or 1, where the plain normal interval fails.
The accuracy drop compares two models on the *same* inputs, so it is a paired difference: Newcombe's
hybrid score interval (method 10 of Newcombe, Stat. Med. 1998;17:2635-50), built from the two Wilson
intervals and the correlation of the paired outcomes. The verdict itself still comes from the point
estimate; the interval says how much to trust it.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of successes / n."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(first: np.ndarray, second: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Newcombe's interval for mean(first) - mean(second), both boolean outcomes on the same inputs."""
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    n = len(first)
    a = int(np.sum(first & second))
    b = int(np.sum(first & ~second))
    c = int(np.sum(~first & second))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom else 0.0
    diff = p1 - p2
    lower = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, diff - lower), min(1.0, diff + upper)


def resolution_notes(n: int, quant: str, max_drop_pp: float | None, min_agreement: float | None) -> list[str]:
    """Why n inputs cannot resolve a gate row: one input weighs more than the limit it is held to."""
    notes = []
    one_pp = 100.0 / n
    if max_drop_pp is not None and one_pp > max_drop_pp + 1e-12:
        notes.append(f"{n} inputs: one input is {one_pp:.2f} pp; the {quant} gate is {max_drop_pp:g} pp")
    if min_agreement is not None and 1.0 / n > (1.0 - min_agreement) + 1e-12 and min_agreement < 1.0:
        notes.append(f"{n} inputs: one input is {1.0 / n:.4f} of agreement; the {quant} gate allows "
                     f"{1.0 - min_agreement:.4f} to differ")
    return notes
